package storage_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/storage"
)

func Example() {
	dir, err := os.MkdirTemp("", "telehub-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	s, err := storage.Open(storage.Config{
		Path:   filepath.Join(dir, "telehub.db"),
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	done := make(chan bridge.Result, 1)
	err = s.Submit(&bridge.Write{
		Device: "pump-7", Transport: bridge.TransportMQTT, Seen: time.Now(), Seq: 1, HasSeq: true,
		Events: []bridge.Event{{
			Kind: bridge.KindTelemetry, Topic: "telemetry/pump-7/temp", Device: "pump-7", Metric: "temp",
			State: []byte(`{"value":21.5}`),
			Data:  []byte(`{"topic":"telemetry/pump-7/temp","value":21.5}`),
		}},
		Done: func(r bridge.Result) { done <- r },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	r := <-done // the reading is durably stored: ack the device now
	fmt.Println("first id:", r.FirstID, "duplicate:", r.Duplicate)

	recs, next, err := s.Scan(0, s.LastID(), nil, 100)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, rec := range recs {
		fmt.Println(rec.ID, rec.Kind, rec.Topic, string(rec.Data))
	}
	fmt.Println("next:", next)
	// Output:
	// first id: 1 duplicate: false
	// 1 telemetry telemetry/pump-7/temp {"topic":"telemetry/pump-7/temp","value":21.5}
	// next: 1
}
