package hub

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape GETs /metrics and parses the text exposition.
func scrape(t *testing.T, h *Hub) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + h.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET /metrics: Content-Type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// sample finds the metric of family name whose labels include labels
// (name=value pairs); nil when there is none.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return m
	}
	return nil
}

// value is a counter's or gauge's value, -1 when the sample is missing.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	m := sample(fams, name, labels...)
	switch {
	case m == nil:
		return -1
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return -1
}

// TestMetricsCountWhatHappened runs a known workload (devices, readings,
// one duplicate, one rejected frame, one SSE watcher on #) and checks that
// /metrics says exactly that, and that the registry passes promlint.
func TestMetricsCountWhatHappened(t *testing.T) {
	h := startHub(t, testConfig(t))
	w := openSSE(t, h, url.Values{"topic": {"#"}}, "")

	const devices, frames, values = 3, 20, 2
	var devs []*wsDevice
	for i := range devices {
		d := dialDevice(t, h, fmt.Sprintf("meter-%d", i))
		devs = append(devs, d)
		for seq := 1; seq <= frames; seq++ {
			d.send(t, fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"temp":%d.5,"hum":%d}}`, seq, seq, 40+seq))
		}
		for seq := 1; seq <= frames; seq++ {
			if m := d.next(t); m["type"] != "ack" || m["seq"] != float64(seq) {
				t.Fatalf("meter-%d frame %d: got %v, want its ack", i, seq, m)
			}
		}
	}
	// A resend of a stored frame is acked, counted as a duplicate, not stored.
	devs[0].send(t, fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"temp":1,"hum":2}}`, frames))
	if m := devs[0].next(t); m["type"] != "ack" {
		t.Fatalf("duplicate: got %v, want an ack", m)
	}
	// A frame with a bad metric name is rejected and becomes an error event.
	devs[1].send(t, `{"type":"telemetry","seq":99,"values":{"bad name":1}}`)
	if m := devs[1].next(t); m["type"] != "error" {
		t.Fatalf("bad frame: got %v, want an error answer", m)
	}

	const (
		telemetry = devices * frames * values
		presence  = devices // one connect each
		rejected  = 1
		stored    = telemetry + presence + rejected
	)
	// The watcher sees every stored event once; then the counters are final.
	for range stored {
		w.next(t)
	}
	var fams map[string]*dto.MetricFamily
	waitFor(t, "the delivered counter to catch up", func() bool {
		fams = scrape(t, h)
		return value(fams, "telehub_events_delivered_total", "transport", "sse") >= stored
	})

	counts := []struct {
		name   string
		labels []string
		want   float64
	}{
		// The bridge counts the duplicate's events too: it accepts them,
		// and storage then recognizes the seq.
		{"telehub_events_ingested_total", []string{"kind", "telemetry"}, telemetry + values},
		{"telehub_events_ingested_total", []string{"kind", "presence"}, presence},
		{"telehub_events_ingested_total", []string{"kind", "error"}, rejected},
		{"telehub_events_stored_total", nil, stored},
		{"telehub_events_delivered_total", []string{"transport", "sse"}, stored},
		{"telehub_duplicates_total", nil, 1},
		{"telehub_payloads_rejected_total", []string{"reason", "bad_request"}, rejected},
		{"telehub_devices_connected", []string{"transport", "ws"}, devices},
		{"telehub_watchers_connected", []string{"transport", "sse"}, 1},
		{"telehub_build_info", []string{"version", Version, "goversion", runtime.Version()}, 1},
	}
	for _, c := range counts {
		if got := value(fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	for _, name := range []string{"telehub_commit_duration_seconds", "telehub_commit_batch_writes", "telehub_ingest_to_fanout_seconds"} {
		m := sample(fams, name)
		if m == nil || m.Histogram == nil {
			t.Errorf("%s: no histogram", name)
			continue
		}
		if m.Histogram.GetSampleCount() == 0 {
			t.Errorf("%s: no observations", name)
		}
	}
	// Every device message, presence change and error event was one write
	// in some commit.
	if m := sample(fams, "telehub_commit_batch_writes"); m != nil && m.Histogram != nil {
		if got, want := m.Histogram.GetSampleSum(), float64(devices*frames+1+presence+rejected); got != want {
			t.Errorf("telehub_commit_batch_writes sum = %v, want %v writes", got, want)
		}
	}

	problems, err := testutil.GatherAndLint(h.Metrics().Registry)
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
