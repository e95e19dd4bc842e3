package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Metric names in dashboards and alerts are checked against the code, not
// against a list kept by hand: exportedMetrics parses every non-test Go
// file of cmd/ and internal/ and collects the Name (with Namespace and
// Subsystem) of each prometheus.CounterOpts, GaugeOpts, HistogramOpts and
// SummaryOpts literal and each prometheus.NewDesc. A metric renamed or
// removed in the code fails the panel or alert that still uses it.
//
// Series that no Go code of ours defines are listed here, with their
// source: Prometheus's own scrape health, and the families of Kong's
// prometheus plugin that the dashboards use (enabled in kong.yml).
var externalMetrics = []string{
	"up",                             // Prometheus, per scrape target
	"kong_http_requests_total",       // Kong prometheus plugin: status_code_metrics
	"kong_request_latency_ms_bucket", // Kong prometheus plugin: latency_metrics
	"kong_upstream_target_health",    // Kong prometheus plugin: upstream_health_metrics
}

var (
	exportedOnce sync.Once
	exported     map[string]bool
	exportedErr  error
)

// exportedMetrics is every series name the code can export, with the
// _bucket, _sum and _count series of histograms and summaries.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	exportedOnce.Do(func() { exported, exportedErr = scanMetrics("../cmd", "../internal") })
	if exportedErr != nil {
		t.Fatal(exportedErr)
	}
	if len(exported) == 0 {
		t.Fatal("no metric found in the Go source")
	}
	return exported
}

func scanMetrics(roots ...string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CompositeLit:
					kind := prometheusSelector(n.Type)
					if !strings.HasSuffix(kind, "Opts") {
						return true
					}
					name := optsName(n)
					if name == "" {
						return true
					}
					out[name] = true
					switch kind {
					case "HistogramOpts":
						out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = true, true, true
					case "SummaryOpts":
						out[name+"_sum"], out[name+"_count"] = true, true
					}
				case *ast.CallExpr:
					if prometheusSelector(n.Fun) == "NewDesc" && len(n.Args) > 0 {
						if lit, ok := n.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							name, _ := strconv.Unquote(lit.Value)
							out[name] = true
						}
					}
				}
				return true
			})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// prometheusSelector is Sel of a prometheus.Sel expression, else "".
func prometheusSelector(e ast.Expr) string {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return ""
	}
	if x, ok := sel.X.(*ast.Ident); ok && x.Name == "prometheus" {
		return sel.Sel.Name
	}
	return ""
}

// optsName is the fully qualified name of an *Opts literal.
func optsName(lit *ast.CompositeLit) string {
	parts := map[string]string{}
	for _, el := range lit.Elts {
		kv, ok := el.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		key, ok1 := kv.Key.(*ast.Ident)
		val, ok2 := kv.Value.(*ast.BasicLit)
		if ok1 && ok2 && val.Kind == token.STRING {
			parts[key.Name], _ = strconv.Unquote(val.Value)
		}
	}
	if parts["Name"] == "" {
		return ""
	}
	var name []string
	for _, k := range []string{"Namespace", "Subsystem", "Name"} {
		if parts[k] != "" {
			name = append(name, parts[k])
		}
	}
	return strings.Join(name, "_")
}

var (
	promStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promMatchers = regexp.MustCompile(`\{[^{}]*\}`)
	promRanges   = regexp.MustCompile(`\[[^\[\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promTokens   = regexp.MustCompile(`[0-9][0-9A-Za-z_.]*|\$[A-Za-z_][A-Za-z0-9_]*|[A-Za-z_:][A-Za-z0-9_:]*\s*\(?`)
	promKeywords = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan", "atan2"}
)

// metricNames are the series names a PromQL expression selects: what is
// left once strings, label matchers, ranges, grouping clauses, numbers,
// variables, functions and keywords are taken out.
func metricNames(expr string) []string {
	s := promStrings.ReplaceAllString(expr, `""`)
	s = promMatchers.ReplaceAllString(s, " ")
	s = promRanges.ReplaceAllString(s, " ")
	s = promGrouping.ReplaceAllString(s, " ")
	var out []string
	for _, tok := range promTokens.FindAllString(s, -1) {
		switch {
		case tok[0] >= '0' && tok[0] <= '9', tok[0] == '$', strings.HasSuffix(tok, "("):
			continue // a number or duration, a Grafana variable, a function
		}
		tok = strings.TrimSpace(tok)
		if slices.Contains(promKeywords, strings.ToLower(tok)) || slices.Contains(out, tok) {
			continue
		}
		out = append(out, tok)
	}
	return out
}

// unknownMetrics are the names expr uses that nothing exports.
func unknownMetrics(t *testing.T, expr string) []string {
	t.Helper()
	known := exportedMetrics(t)
	var out []string
	for _, name := range metricNames(expr) {
		if !known[name] && !slices.Contains(externalMetrics, name) {
			out = append(out, name)
		}
	}
	return out
}

func TestMetricNamesParsesPromQL(t *testing.T) {
	t.Parallel()
	for expr, want := range map[string][]string{
		`sum by (context) (rate(http_requests_total{code=~"5..",context=~"$context"}[$__rate_interval]))`: {"http_requests_total"},
		`histogram_quantile(0.95, sum by (le) (rate(saga_duration_seconds_bucket[5m]))) > 0.5`:            {"saga_duration_seconds_bucket"},
		`a_total / on(job) group_left(x) b_total unless c offset 10m or vector(0)`:                        {"a_total", "b_total", "c"},
		`sum(increase(x[1h])) by (location) / 100 and bool 1e3`:                                           {"x"},
		`max without (instance) (events_consumer_lag_seconds{stream="by (x)"}) > 60`:                      {"events_consumer_lag_seconds"},
		`up == 0`: {"up"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", expr, got, want)
		}
	}
}

func TestExportedMetricsComeFromTheCode(t *testing.T) {
	t.Parallel()
	known := exportedMetrics(t)
	// The families the deployment's alerts and dashboards are built on.
	for _, name := range []string{
		"http_requests_total", "http_request_duration_seconds_bucket",
		"events_published_total", "events_processed_total", "events_dead_lettered_total",
		"events_consumer_lag_seconds", "outbox_backlog",
		"payments_total", "cart_operations_total",
	} {
		if !known[name] {
			t.Errorf("%s not found in the Go source", name)
		}
	}
	if known["made_up_metric_total"] {
		t.Error("the scanner invents names")
	}
}
