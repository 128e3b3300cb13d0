package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestNewRegistersALintCleanSet(t *testing.T) {
	m := New("1.2.3")
	m.EventsIngested.WithLabelValues("telemetry").Add(3)
	problems, err := testutil.GatherAndLint(m.Registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		if f.GetName() == "telehub_build_info" {
			for _, l := range f.GetMetric()[0].GetLabel() {
				if l.GetName() == "version" && l.GetValue() == "1.2.3" {
					found = true
				}
			}
		}
	}
	if !found {
		t.Fatal("telehub_build_info{version=\"1.2.3\"} missing")
	}
}

func TestOrNew(t *testing.T) {
	m := New("x")
	a, b := OrNew(nil), OrNew(nil)
	if OrNew(m) != m || a == nil || a == b {
		t.Fatal("OrNew must keep a given set and make a fresh private one for nil")
	}
}
