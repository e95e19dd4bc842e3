package deploy

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

// registerPlugins teaches the SDK the panel and query types, so strict
// decoding checks their options and targets too instead of keeping them
// as opaque maps.
var registerPlugins = sync.OnceFunc(plugins.RegisterDefaultPlugins)

// datasourceUID is the uid grafana/provisioning/datasources gives
// Prometheus; every panel and query must name it.
const datasourceUID = "prometheus"

func dashboards(t *testing.T) map[string]*dashboard.Dashboard {
	t.Helper()
	registerPlugins()
	files, err := filepath.Glob("grafana/dashboards/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	out := map[string]*dashboard.Dashboard{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d, err := strictDashboard(raw)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		out[filepath.Base(f)] = d
	}
	return out
}

// strictDashboard checks a dashboard with the SDK's strict decoder —
// unknown fields, wrong types and missing required fields are errors in
// the dashboard, its panels, their options and their Prometheus queries —
// and returns it decoded. Two quirks of the SDK (v0.0.22) shape this: its
// strict decoders return their error list as a cog.BuildErrors even when
// the list is empty (a typed nil in a non-nil error), so an empty list is
// success; and, for the same reason, the strict path drops every panel and
// query it decoded without error. So the strict pass only validates, and
// the content comes from the SDK's regular decoder.
func strictDashboard(raw []byte) (*dashboard.Dashboard, error) {
	err := (&dashboard.Dashboard{}).UnmarshalJSONStrict(raw)
	var list cog.BuildErrors
	if errors.As(err, &list) && len(list) == 0 {
		err = nil
	}
	if err != nil {
		return nil, err
	}
	var d dashboard.Dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// TestDashboardsAreWellFormed: strict decoding with the Grafana SDK,
// unique uids, every panel on the provisioned data source with at least
// one Prometheus query, and every query reading series the code exports.
func TestDashboardsAreWellFormed(t *testing.T) {
	t.Parallel()
	ds := dashboards(t)
	for _, want := range []string{"api.json", "saga.json", "events.json", "business.json"} {
		if ds[want] == nil {
			t.Errorf("dashboard %s missing", want)
		}
	}
	uids := map[string]string{}
	for file, d := range ds {
		if d.Uid == nil || d.Title == nil || *d.Uid == "" {
			t.Errorf("%s: uid and title are required", file)
			continue
		}
		if other, dup := uids[*d.Uid]; dup {
			t.Errorf("%s and %s share uid %s", file, other, *d.Uid)
		}
		uids[*d.Uid] = file
		for _, v := range d.Templating.List {
			if v.Query != nil && v.Query.String != nil {
				if bad := unknownMetrics(t, variableExpr(*v.Query.String)); len(bad) > 0 {
					t.Errorf("%s: variable %s reads %v, which nothing exports", file, v.Name, bad)
				}
			}
		}
		var panels []dashboard.Panel
		for _, p := range d.Panels {
			switch {
			case p.Panel != nil:
				panels = append(panels, *p.Panel)
			case p.RowPanel != nil:
				panels = append(panels, p.RowPanel.Panels...)
			}
		}
		if len(panels) == 0 {
			t.Errorf("%s: no panels", file)
		}
		ids := map[uint32]bool{}
		for _, p := range panels {
			name := file + ": panel " + deref(p.Title)
			if p.Id == nil || ids[*p.Id] {
				t.Errorf("%s: missing or duplicate id", name)
			} else {
				ids[*p.Id] = true
			}
			if p.Title == nil || *p.Title == "" || p.Description == nil || *p.Description == "" {
				t.Errorf("%s: title and description are required (the description says what the figure is)", name)
			}
			if !onDatasource(p.Datasource) {
				t.Errorf("%s: datasource %+v, want uid %s", name, p.Datasource, datasourceUID)
			}
			if g := p.GridPos; g == nil || g.W <= 0 || g.X+g.W > 24 || g.H <= 0 {
				t.Errorf("%s: grid position %+v outside the 24 columns", name, p.GridPos)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: no query", name)
			}
			for _, target := range p.Targets {
				q, ok := target.(*prometheus.Dataquery)
				if !ok {
					t.Errorf("%s: target %T is not a Prometheus query (does it name the data source?)", name, target)
					continue
				}
				if strings.TrimSpace(q.Expr) == "" || !onDatasource(q.Datasource) {
					t.Errorf("%s: query %q on %+v", name, q.Expr, q.Datasource)
					continue
				}
				if bad := unknownMetrics(t, q.Expr); len(bad) > 0 {
					t.Errorf("%s: %q reads %v, which nothing exports", name, q.Expr, bad)
				}
			}
		}
	}
}

// TestGrafanaProvisioning: the data source the dashboards name is the one
// provisioned, pointing at the compose service, and the dashboards
// provider reads the directory compose mounts them at.
func TestGrafanaProvisioning(t *testing.T) {
	t.Parallel()
	var dsFile struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name      string         `yaml:"name"`
			UID       string         `yaml:"uid"`
			Type      string         `yaml:"type"`
			Access    string         `yaml:"access"`
			URL       string         `yaml:"url"`
			IsDefault bool           `yaml:"isDefault"`
			Editable  bool           `yaml:"editable"`
			JSONData  map[string]any `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	decodeStrict(t, "grafana/provisioning/datasources/prometheus.yml", &dsFile)
	if len(dsFile.Datasources) != 1 || dsFile.Datasources[0].UID != datasourceUID || dsFile.Datasources[0].Type != "prometheus" {
		t.Fatalf("provisioned data sources %+v: want one prometheus with uid %s", dsFile.Datasources, datasourceUID)
	}
	p := fleet(t)
	if u := dsFile.Datasources[0].URL; u != "http://prometheus:9090" || p.Services["prometheus"].Name == "" {
		t.Errorf("data source URL %s: want the compose service http://prometheus:9090", u)
	}

	var provFile struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name                  string         `yaml:"name"`
			Folder                string         `yaml:"folder"`
			Type                  string         `yaml:"type"`
			DisableDeletion       bool           `yaml:"disableDeletion"`
			AllowUIUpdates        bool           `yaml:"allowUiUpdates"`
			UpdateIntervalSeconds int            `yaml:"updateIntervalSeconds"`
			Options               map[string]any `yaml:"options"`
		} `yaml:"providers"`
	}
	decodeStrict(t, "grafana/provisioning/dashboards/pos.yml", &provFile)
	if len(provFile.Providers) != 1 {
		t.Fatalf("dashboard providers: %+v", provFile.Providers)
	}
	path, _ := provFile.Providers[0].Options["path"].(string)
	mounted := slices.ContainsFunc(p.Services["grafana"].Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Target == path && filepath.Base(v.Source) == "dashboards"
	})
	if !mounted {
		t.Errorf("the provider reads %q, where compose does not mount grafana/dashboards", path)
	}
}

// onDatasource reports whether ref names the provisioned Prometheus.
func onDatasource(ref *common.DataSourceRef) bool {
	return ref != nil && ref.Uid != nil && *ref.Uid == datasourceUID && ref.Type != nil && *ref.Type == "prometheus"
}

// labelValues matches a label_values(metric, label) variable query.
var labelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$`)

// variableExpr is the PromQL inside a Grafana variable query.
func variableExpr(q string) string {
	if m := labelValues.FindStringSubmatch(q); m != nil {
		return m[1]
	}
	return q
}

func deref(s *string) string {
	if s == nil {
		return "(untitled)"
	}
	return *s
}
