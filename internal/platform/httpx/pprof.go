package httpx

import (
	"fmt"
	"net/http"
	"net/http/pprof"

	"github.com/labstack/echo/v4"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/errs"
)

// mountPprof serves the profiler to admins only: a profile shows the code
// and can be made to burn CPU, so it is never public.
func (s *Server) mountPprof() {
	adminOnly := func(h http.Handler) echo.HandlerFunc {
		return func(c echo.Context) error {
			if p, ok := auth.FromContext(c.Request().Context()); !ok || p.Role != auth.RoleAdmin {
				return NewProblem(errs.Forbidden, fmt.Sprintf("%s needs an admin key", c.Request().URL.Path), nil)
			}
			h.ServeHTTP(c.Response(), c.Request())
			return nil
		}
	}
	g := s.Echo.Group("/debug/pprof")
	g.GET("/", adminOnly(http.HandlerFunc(pprof.Index)))
	g.GET("/profile", adminOnly(http.HandlerFunc(pprof.Profile)))
	g.GET("/trace", adminOnly(http.HandlerFunc(pprof.Trace)))
	g.GET("/:name", func(c echo.Context) error { return adminOnly(pprof.Handler(c.Param("name")))(c) })
}
