package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/topic"
	"github.com/telehub/telehub/storage"
)

// BenchmarkEventsNewestOfRareTopic measures GET /v1/events newest first
// for a topic with few events among 1 000 000 retained events of 1 000
// other devices (five metrics each): the chart's "last 300 readings".
func BenchmarkEventsNewestOfRareTopic(b *testing.B) {
	const (
		total   = 1_000_000
		rare    = 400 // readings of the rare device, spread over the log
		devices = 1000
	)
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	s, err := storage.Open(storage.Config{
		Path:    filepath.Join(b.TempDir(), "telehub.db"),
		NoFsync: true,
		Logger:  slog.New(slog.DiscardHandler),
		Now:     func() time.Time { return at }, // nothing expires by age
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	fillRareAmongMany(b, s, at, total, rare, devices)
	a, err := New(Config{Store: s, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	a.Register(mux)
	for _, q := range []string{
		"topic=telemetry/rare-device/temp&order=desc&limit=300",
		"topic=telemetry/rare-device/%23&order=desc&limit=300",
		"topic=telemetry/%2B/temp&order=desc&limit=300",
	} {
		b.Run(q, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/v1/events?"+q, nil)
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				mux.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || rec.Body.Len() < 300*40 {
					b.Fatalf("status %d, %d bytes", rec.Code, rec.Body.Len())
				}
			}
		})
	}
}

// fillRareAmongMany stores total events: rare readings of rare-device's
// temp spread evenly, the rest five-metric readings of other devices.
func fillRareAmongMany(b *testing.B, s *storage.Store, at time.Time, total, rare, devices int) {
	b.Helper()
	metrics := []string{"temp", "hum", "energy", "door", "pump"}
	every := total / len(metrics) / rare
	var wg sync.WaitGroup
	done := func(r bridge.Result) {
		if r.Err != nil {
			b.Error(r.Err)
		}
		wg.Done()
	}
	for i, n := 0, 0; n < total; i++ {
		dev, ms := fmt.Sprintf("dev-%d", i%devices), metrics
		if i%every == 0 {
			dev, ms = "rare-device", metrics[:1]
		}
		w := &bridge.Write{Device: dev, Seen: at, Done: done}
		for _, m := range ms {
			topic := topic.Telemetry(dev, m)
			w.Events = append(w.Events, bridge.Event{Kind: bridge.KindTelemetry, Topic: topic, Device: dev, Metric: m,
				State: []byte(`{"value":21.5}`), Data: []byte(`{"topic":"` + topic + `","device":"` + dev + `","value":21.5}`)})
		}
		n += len(w.Events)
		wg.Add(1)
		if err := s.Submit(w); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
}
