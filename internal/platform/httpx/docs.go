package httpx

import (
	"embed"
	"encoding/json"
	"net/http"
	"sync"

	"github.com/labstack/echo/v4"
)

// docsUI holds Swagger UI (Apache-2.0, see docsui/LICENSE-swagger-ui),
// pre-compressed: /docs works offline and loads nothing from a CDN.
//
//go:embed docsui/*.gz
var docsUI embed.FS

const docsPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pos API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true, persistAuthorization: true});</script>
</body></html>`

// mountDocs serves /openapi.json (built once, after every context has
// registered) and the browsable /docs.
func (s *Server) mountDocs() {
	var (
		once sync.Once
		doc  []byte
		err  error
	)
	s.Echo.GET("/openapi.json", func(c echo.Context) error {
		once.Do(func() { doc, err = json.Marshal(s.API.OpenAPI()) })
		if err != nil {
			return err
		}
		return c.Blob(http.StatusOK, "application/json", doc)
	})
	s.Echo.GET("/docs", func(c echo.Context) error { return c.HTML(http.StatusOK, docsPage) })
	asset := func(name, contentType string) echo.HandlerFunc {
		return func(c echo.Context) error {
			b, err := docsUI.ReadFile("docsui/" + name + ".gz")
			if err != nil {
				return err
			}
			h := c.Response().Header()
			h.Set("Content-Encoding", "gzip") // every browser accepts gzip
			h.Set("Cache-Control", "public, max-age=86400")
			return c.Blob(http.StatusOK, contentType, b)
		}
	}
	s.Echo.GET("/docs/swagger-ui-bundle.js", asset("swagger-ui-bundle.js", "application/javascript"))
	s.Echo.GET("/docs/swagger-ui.css", asset("swagger-ui.css", "text/css"))
}
