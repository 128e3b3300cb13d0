package stream_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/storage"
	"github.com/telehub/telehub/stream"
)

// memLog is a minimal stream.Log holding nothing yet.
type memLog struct{ ids storage.IDCodec }

func (l memLog) IDs() storage.IDCodec     { return l.ids }
func (l memLog) OldestID() (uint64, bool) { return 0, false }
func (l memLog) LastID() uint64           { return 0 }
func (l memLog) OldestEvent() (uint64, time.Time, bool) {
	return 0, time.Time{}, false
}
func (l memLog) AfterTime(time.Time) (uint64, error) { return 0, nil }
func (l memLog) Scan(_, upTo uint64, _ func(string) bool, _ int) ([]storage.Record, uint64, error) {
	return nil, upTo, nil
}

// A hub serves watchers over HTTP and is fed by storage after each commit.
func Example() {
	hub, err := stream.New(stream.Config{Log: memLog{ids: storage.NewIDCodec("a1b2")}})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := hub.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/stream", hub.ServeSSE)
	mux.HandleFunc("GET /v1/stream/ws", hub.ServeWS)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer func() { _ = hub.Shutdown(context.Background()) }() // before srv.Close

	resp, err := http.Get(srv.URL + "/v1/stream?topic=telemetry/%2B/temp")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	line, _ := r.ReadString('\n')
	fmt.Print(line) // the watcher is registered once this line is out

	hub.Publish([]storage.Record{
		{ID: 1, Kind: bridge.KindTelemetry, Topic: "telemetry/d1/hum", Data: []byte(`{"value":40}`)},
		{ID: 2, Kind: bridge.KindTelemetry, Topic: "telemetry/d1/temp", Data: []byte(`{"value":21.5}`)},
	})
	for {
		line, _ := r.ReadString('\n')
		if strings.HasPrefix(line, "data") {
			fmt.Print(line)
			break
		}
		if line != "\n" {
			fmt.Print(line)
		}
	}
	// Output:
	// retry: 2000
	// id: a1b2-0000000000000002
	// event: telemetry
	// data: {"value":21.5}
}
