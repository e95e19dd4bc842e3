package loadtest

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"strings"
)

// The HTML report is one self-contained file: the charts are SVG drawn
// here, the hover read-out a few lines of inline script, the styles
// inline. Nothing is fetched from anywhere, so the file can be archived
// as a CI artifact and opened years later, offline.

// chart geometry
const (
	chartW, chartH                       = 920, 260
	marginL, marginR, marginT, marginB   = 64, 64, 16, 34
	plotW, plotH                         = chartW - marginL - marginR, chartH - marginT - marginB
	colorP50, colorP95, colorP99, colorR = "#2b6cb0", "#dd6b20", "#c53030", "#2f855a"
)

// plotLine is one plotted series: y per second, NaN for a gap.
type plotLine struct {
	name, color string
	dashed      bool
	right       bool // on the right axis
	ys          []float64
}

// niceStep rounds v up to 1, 2 or 5 × 10^k: axis steps people read.
func niceStep(v float64) float64 {
	if v <= 0 || math.IsNaN(v) {
		return 1
	}
	exp := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*exp >= v*(1-1e-9) {
			return m * exp
		}
	}
	return 10 * exp
}

// axis picks a step of niceStep size and a top that is a whole number of
// steps above v: about four gridlines with round labels.
func axis(v float64) (top, step float64) {
	step = niceStep(v / 4)
	top = step * math.Max(1, math.Ceil(v*(1-1e-9)/step))
	return top, step
}

func maxOf(ls []plotLine, right bool) float64 {
	m := 0.0
	for _, l := range ls {
		if l.right != right {
			continue
		}
		for _, y := range l.ys {
			if !math.IsNaN(y) {
				m = math.Max(m, y)
			}
		}
	}
	return m
}

// svgChart draws lines over n seconds with a left axis (leftUnit) and,
// when a line asks for it, a right one.
func svgChart(id, leftUnit, rightUnit string, n int, ls []plotLine) template.HTML {
	var b strings.Builder
	lmax, lstep := axis(maxOf(ls, false) * 1.05)
	ticks := int(math.Round(lmax / lstep))
	// The right axis shares the left one's gridlines, with a round step
	// of its own.
	rmax := niceStep(maxOf(ls, true)*1.05/float64(ticks)) * float64(ticks)
	xOf := func(i int) float64 {
		if n <= 1 {
			return marginL
		}
		return marginL + float64(i)/float64(n-1)*plotW
	}
	yOf := func(v, top float64) float64 { return marginT + plotH - v/top*plotH }
	fmt.Fprintf(&b, `<svg id="%s" viewBox="0 0 %d %d" width="100%%" role="img" xmlns="http://www.w3.org/2000/svg">`, id, chartW, chartH)
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="#fff" stroke="#ccc"/>`, marginL, marginT, plotW, plotH)
	for i := 0; i <= ticks; i++ {
		v := lstep * float64(i)
		y := yOf(v, lmax)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/>`, marginL, marginL+plotW, y, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" class="tick">%s</text>`, marginL-6, y+4, trimFloat(v))
		if rightUnit != "" {
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" class="tick">%s</text>`, marginL+plotW+6, y+4, trimFloat(rmax*v/lmax))
		}
	}
	fmt.Fprintf(&b, `<text x="12" y="%d" class="unit" transform="rotate(-90 12 %d)">%s</text>`, marginT+plotH/2, marginT+plotH/2, template.HTMLEscapeString(leftUnit))
	if rightUnit != "" {
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="unit" transform="rotate(90 %d %d)">%s</text>`, chartW-12, marginT+plotH/2, chartW-12, marginT+plotH/2, template.HTMLEscapeString(rightUnit))
	}
	step := max(1, int(niceStep(float64(n)/10)))
	for i := 0; i < n; i += step {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" class="tick">%ds</text>`, xOf(i), marginT+plotH+18, i)
	}
	for _, l := range ls {
		top := lmax
		if l.right {
			top = rmax
		}
		var d strings.Builder
		pen := false
		for i, y := range l.ys {
			if math.IsNaN(y) {
				pen = false
				continue
			}
			cmd := "L"
			if !pen {
				cmd = "M"
			}
			fmt.Fprintf(&d, "%s%.1f %.1f ", cmd, xOf(i), yOf(y, top))
			pen = true
		}
		dash := ""
		if l.dashed {
			dash = ` stroke-dasharray="5 4"`
		}
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="1.8"%s><title>%s</title></path>`,
			strings.TrimSpace(d.String()), l.color, dash, template.HTMLEscapeString(l.name))
	}
	fmt.Fprintf(&b, `<line class="cursor" x1="0" x2="0" y1="%d" y2="%d" stroke="#888" visibility="hidden"/>`, marginT, marginT+plotH)
	b.WriteString(`</svg><div class="legend">`)
	for _, l := range ls {
		style := "solid"
		if l.dashed {
			style = "dashed"
		}
		fmt.Fprintf(&b, `<span><i style="border-top:3px %s %s"></i>%s</span>`, style, l.color, template.HTMLEscapeString(l.name))
	}
	b.WriteString(`</div>`)
	return template.HTML(b.String()) // built from numbers and escaped names only
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

// latencyLines and throughputLines turn the series into plotted lines;
// a second without requests is a gap in the latency lines, not a zero.
func latencyLines(ps []Point) []plotLine {
	p50, p95, p99 := make([]float64, len(ps)), make([]float64, len(ps)), make([]float64, len(ps))
	for i, p := range ps {
		if p.Requests == 0 {
			p50[i], p95[i], p99[i] = math.NaN(), math.NaN(), math.NaN()
			continue
		}
		p50[i], p95[i], p99[i] = p.P50, p.P95, p.P99
	}
	return []plotLine{{name: "p50", color: colorP50, ys: p50}, {name: "p95", color: colorP95, ys: p95}, {name: "p99", color: colorP99, ys: p99}}
}

func throughputLines(ps []Point) []plotLine {
	rps, errs, vus := make([]float64, len(ps)), make([]float64, len(ps)), make([]float64, len(ps))
	for i, p := range ps {
		rps[i], errs[i], vus[i] = float64(p.Requests), float64(p.Errors), float64(p.VUs)
	}
	return []plotLine{{name: "requests/s", color: colorR, ys: rps}, {name: "errors/s", color: colorP99, ys: errs},
		{name: "VUs (right axis)", color: "#718096", dashed: true, right: true, ys: vus}}
}

var htmlTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"ms":   fmtMS,
	"pct":  func(f float64) string { return fmt.Sprintf("%.2f%%", f*100) },
	"secs": secs,
	"st":   fmtStatuses,
	"f1":   func(f float64) string { return fmt.Sprintf("%.1f", f) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pos loadtest {{.S.Scenario}} — {{if .S.Passed}}passed{{else}}failed{{end}}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1000px;color:#1a202c;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e2e8f0;padding-bottom:4px}
.meta{color:#4a5568}.verdict{display:inline-block;padding:2px 10px;border-radius:4px;color:#fff;font-weight:600}
.pass{background:#2f855a}.fail{background:#c53030}.na{background:#a0aec0}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}.card{border:1px solid #e2e8f0;border-radius:6px;padding:10px 14px;min-width:130px}
.card b{display:block;font-size:20px}table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:4px 8px;border-bottom:1px solid #edf2f7;text-align:right;vertical-align:top}th{background:#f7fafc}
td.l,th.l{text-align:left}.tick{font-size:11px;fill:#4a5568}.unit{font-size:11px;fill:#4a5568;text-anchor:middle}
.legend span{margin-right:16px;font-size:12px}.legend i{display:inline-block;width:22px;margin-right:6px;vertical-align:middle}
.readout{font-size:12px;color:#2d3748;min-height:18px;font-variant-numeric:tabular-nums}ul{margin:4px 0;padding-left:20px}
code{background:#f7fafc;padding:1px 4px;border-radius:3px}
</style></head><body>
<h1>pos loadtest — {{.S.Scenario}} <span class="verdict {{if .S.Passed}}pass{{else}}fail{{end}}">{{if .S.Passed}}PASSED{{else}}FAILED{{end}}</span></h1>
<div class="meta">{{.S.Target}} · run {{.S.RunID}} · seed {{.S.Seed}} · started {{.S.StartedAt.Format "2006-01-02 15:04:05 MST"}} ·
{{if eq .S.Model "open"}}open model, {{.S.Rate}} journeys/s on up to {{.S.MaxVUs}} VUs{{else}}closed model, stages <code>{{.S.Stages}}</code> (peak {{.S.MaxVUs}} VUs), think time {{.S.Think}}{{end}}</div>
{{if not .S.Passed}}<ul>{{range .S.Failures}}<li>{{.}}</li>{{end}}</ul>{{end}}
<div class="cards">
<div class="card">requests/s<b>{{f1 .S.RPS}}</b></div>
<div class="card">p95<b>{{ms .S.Latency.P95}}</b></div>
<div class="card">p99<b>{{ms .S.Latency.P99}}</b></div>
<div class="card">errors<b>{{pct .S.ErrorRate}}</b></div>
<div class="card">requests<b>{{.S.Requests}}</b></div>
<div class="card">duration<b>{{secs .S.DurationS}}</b></div>
</div>
{{if .S.Baseline}}<p class="meta">For comparison, {{.S.Baseline}}.</p>{{end}}
<h2>Latency over time</h2>{{.Latency}}<div class="readout" id="ro-lat"></div>
<h2>Throughput</h2>{{.Throughput}}<div class="readout" id="ro-thr"></div>
<h2>Endpoints</h2>
<table><tr><th class="l">endpoint</th><th class="l">route</th><th>count</th><th>req/s</th><th>p50</th><th>p95</th><th>p99</th><th>max</th><th>errors</th><th class="l">statuses</th></tr>
{{range .S.Endpoints}}<tr><td class="l">{{.ID}}</td><td class="l">{{.Route}}</td><td>{{.Count}}</td><td>{{f1 .RPS}}</td><td>{{ms .Latency.P50}}</td><td>{{ms .Latency.P95}}</td><td>{{ms .Latency.P99}}</td><td>{{ms .Latency.Max}}</td><td>{{pct .ErrorRate}}</td><td class="l">{{st .Statuses}}{{range .ErrorLog}}<br><small>{{.}}</small>{{end}}</td></tr>
{{end}}<tr><th class="l">all</th><th></th><th>{{.S.Requests}}</th><th>{{f1 .S.RPS}}</th><th>{{ms .S.Latency.P50}}</th><th>{{ms .S.Latency.P95}}</th><th>{{ms .S.Latency.P99}}</th><th>{{ms .S.Latency.Max}}</th><th>{{pct .S.ErrorRate}}</th><th></th></tr></table>
<p class="meta">Journeys: {{range .S.Iterations.ByJourney}}{{.Name}} {{.Completed}} completed, {{.Failed}} failed; {{end}}{{.S.Interrupted}} requests interrupted by the stop{{if eq .S.Model "open"}}, {{.S.Iterations.Dropped}} arrivals dropped{{end}}.
Setup: {{.S.Setup.Requests}} requests in {{secs .S.Setup.DurationS}}; post-run checks: {{.S.Post.Requests}} requests in {{secs .S.Post.DurationS}}.</p>
<h2>Invariants</h2>
<table>{{range .S.Invariants}}<tr><td class="l"><span class="verdict {{if eq .Status "pass"}}pass{{else if eq .Status "fail"}}fail{{else}}na{{end}}">{{.Status}}</span></td><td class="l">{{.Name}}</td><td class="l">{{.Detail}}</td></tr>{{end}}</table>
{{if .S.Thresholds}}<h2>Thresholds</h2>
<table>{{range .S.Thresholds}}<tr><td class="l"><span class="verdict {{if .OK}}pass{{else}}fail{{end}}">{{if .OK}}ok{{else}}crossed{{end}}</span></td><td class="l"><code>{{.Raw}}</code></td><td class="l">{{if .Detail}}{{.Detail}}{{else}}{{.Shown}}{{end}}</td></tr>{{end}}</table>{{end}}
{{if .S.Checks}}<h2>Checks</h2>
<table>{{range .S.Checks}}<tr><td class="l"><span class="verdict {{if .Fails}}fail{{else}}pass{{end}}">{{.Passes}}/{{.Total}}</span></td><td class="l">{{.Name}}{{if .Sample}}<br><small>{{.Sample}}</small>{{end}}</td></tr>{{end}}</table>{{end}}
{{if .S.Notes}}<h2>Notes</h2><ul>{{range .S.Notes}}<li>{{.}}</li>{{end}}</ul>{{end}}
<script>
(function(){
  var pts = {{.S.Series}} || [];
  function fmt(v){return v>=100?v.toFixed(0):v>=10?v.toFixed(1):v.toFixed(2)}
  function hook(id, out, text){
    var svg=document.getElementById(id), ro=document.getElementById(out);
    if(!svg||!pts.length)return;
    var cur=svg.querySelector('.cursor');
    svg.addEventListener('mousemove',function(e){
      var r=svg.getBoundingClientRect(), x=(e.clientX-r.left)/r.width*{{.W}};
      var i=Math.round((x-{{.ML}})/{{.PW}}*(pts.length-1));
      if(i<0||i>=pts.length){cur.setAttribute('visibility','hidden');return}
      var px={{.ML}}+(pts.length>1?i/(pts.length-1)*{{.PW}}:0);
      cur.setAttribute('x1',px);cur.setAttribute('x2',px);cur.setAttribute('visibility','visible');
      ro.textContent=text(pts[i]);
    });
    svg.addEventListener('mouseleave',function(){cur.setAttribute('visibility','hidden');ro.textContent=''});
  }
  hook('lat','ro-lat',function(p){return p.t+'s: '+(p.requests?('p50 '+fmt(p.p50_ms)+' ms · p95 '+fmt(p.p95_ms)+' ms · p99 '+fmt(p.p99_ms)+' ms · max '+fmt(p.max_ms)+' ms'):'no request')});
  hook('thr','ro-thr',function(p){return p.t+'s: '+p.requests+' requests · '+p.errors+' errors · '+p.vus+' VUs'});
})();
</script>
</body></html>
`))

// Total is passes + fails, for the checks table.
func (c CheckSummary) Total() int64 { return c.Passes + c.Fails }

// HTML renders the self-contained report page.
func (s *Summary) HTML() ([]byte, error) {
	var b bytes.Buffer
	n := len(s.Series)
	err := htmlTmpl.Execute(&b, map[string]any{
		"S":          s,
		"Latency":    svgChart("lat", "latency (ms)", "", n, latencyLines(s.Series)),
		"Throughput": svgChart("thr", "per second", "VUs", n, throughputLines(s.Series)),
		"W":          chartW, "ML": marginL, "PW": plotW,
	})
	return b.Bytes(), err
}

// WriteHTML writes the report page to path.
func (s *Summary) WriteHTML(path string) error {
	page, err := s.HTML()
	if err != nil {
		return err
	}
	return writeFileAtomic(path, page)
}
