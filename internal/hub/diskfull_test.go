package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// warnCount counts the records logged at WARN or above.
type warnCount struct{ n atomic.Int64 }

func (c *warnCount) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (c *warnCount) Handle(context.Context, slog.Record) error    { c.n.Add(1); return nil }
func (c *warnCount) WithAttrs([]slog.Attr) slog.Handler           { return c }
func (c *warnCount) WithGroup(string) slog.Handler                { return c }

// TestDiskFull fills the data file to its cap (--max-bytes) through a
// WebSocket device: readings are refused with the code storage_full, over
// WebSocket and MQTT, /readyz answers 503 saying why, and the refusals
// are not logged one line each.
func TestDiskFull(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxBytes = 1 << 20
	logs := &warnCount{}
	h, err := New(cfg, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopHub(t, h) })
	d := dialDevice(t, h, "filler")
	frame := func(seq int) string {
		return fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"blob":%q}}`, seq, strings.Repeat("x", 8192))
	}
	seq := 1
	for ; ; seq++ {
		if seq > 1000 {
			t.Fatal("the data file never filled up")
		}
		d.send(t, frame(seq))
		m := d.next(t)
		if m["type"] == "ack" {
			continue
		}
		if m["type"] != "error" || m["code"] != "storage_full" || m["seq"] != float64(seq) {
			t.Fatalf("answer %v, want an ack or a storage_full error for seq %d", m, seq)
		}
		break
	}
	var body map[string]any
	if code := getJSON(t, h, "/readyz", &body); code != http.StatusServiceUnavailable ||
		!strings.Contains(fmt.Sprint(body), "out of storage space") {
		t.Errorf("/readyz while full: %d %v, want 503 saying the hub is out of space", code, body)
	}
	// A refused commit does not prove that the next one cannot fit: bbolt
	// reuses the pages the last commits freed once no reader holds them,
	// and a commit smaller than the refused one may fit where it did not.
	// Each reading stored takes more room than it frees, so only a few
	// can; the rest are refused.
	before := logs.n.Load()
	const tries = 100
	refused := 0
	for i := range tries {
		d.send(t, frame(seq+1+i))
		switch m := d.next(t); {
		case m["code"] == "storage_full":
			refused++
		case m["type"] != "ack":
			t.Fatalf("answer %v while full, want storage_full (or, rarely, an ack)", m)
		}
	}
	if refused < tries {
		t.Logf("%d of %d readings stored while full", tries-refused, tries)
	}
	if refused < tries-5 {
		t.Fatalf("%d of %d readings refused while full, want all but a few", refused, tries)
	}
	if n := logs.n.Load() - before; n > tries/10 {
		t.Errorf("%d warnings and errors logged for %d refused readings, want a few", n, refused)
	}

	// An MQTT device is told on its errors topic; its QoS 1 publish stays
	// unacknowledged, to be sent again. As above, a reading may still fit
	// now and then: it is acknowledged, and the next one is tried.
	c := mqttClient(t, h, "filler-m", nil)
	answers := subscribe(t, c, "devices/filler-m/errors")
	for stored := 0; ; stored++ {
		if stored == 5 {
			t.Fatalf("%d MQTT readings stored while full, want them refused", stored)
		}
		tok := c.Publish("devices/filler-m/telemetry", 1, false, fmt.Sprintf(`{"blob":%q}`, strings.Repeat("x", 8192)))
		select {
		case m := <-answers:
			var answer map[string]any
			if err := json.Unmarshal(m.Payload(), &answer); err != nil || answer["code"] != "storage_full" {
				t.Errorf("MQTT error answer %s, want code storage_full", m.Payload())
			}
			return
		case <-tok.Done():
			if err := tok.Error(); err != nil {
				t.Fatalf("MQTT publish while full: %v", err)
			}
			t.Logf("an MQTT reading was stored while full")
		case <-time.After(15 * time.Second):
			t.Fatal("no MQTT error answer while full, and no PUBACK")
		}
	}
}
