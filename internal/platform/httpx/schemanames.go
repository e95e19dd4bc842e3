package httpx

import (
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"
)

// schemaName names OpenAPI schemas after the context that owns the type,
// so that thirteen contexts can each have their own Stats or Filter in one
// document: audit.Stats is "AuditStats", notification.Stats
// "NotificationStats". A type already named after its package keeps its
// name (product.Product is "Product"); platform wrappers are not prefixed
// (httpx.List[audit.Entry] is "ListAuditEntry").
func schemaName(t reflect.Type, hint string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	name := t.Name()
	if name == "" {
		name = hint
	} else if t.PkgPath() != "" {
		name = t.PkgPath() + "." + name
	}
	name = strings.ReplaceAll(name, "[]", "List[")
	var out strings.Builder
	for _, part := range strings.FieldsFunc(name, func(r rune) bool {
		return r == '[' || r == ']' || r == '*' || r == ','
	}) {
		out.WriteString(qualified(part))
	}
	return out.String()
}

// qualified turns "github.com/x/pos/internal/audit.Stats" into
// "AuditStats" and "string" into "String".
func qualified(part string) string {
	dot := strings.LastIndex(part, ".")
	base := upperFirst(part[dot+1:])
	if dot < 0 {
		return base
	}
	path := part[:dot]
	pkg := path[strings.LastIndex(path, "/")+1:]
	if !strings.Contains(path, "/internal/") || strings.Contains(path, "/internal/platform/") {
		return base // the standard library, modules, platform wrappers
	}
	prefix := upperFirst(pkg)
	if strings.HasPrefix(base, prefix) {
		return base
	}
	return prefix + base
}

func upperFirst(s string) string {
	r, size := utf8.DecodeRuneInString(s)
	if size == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[size:]
}
