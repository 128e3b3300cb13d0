package hub

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRunReturnsAPartsFailure: a part that fails while the hub runs (here
// the HTTP server, whose listener goes away under it) makes Run shut the
// hub down and return that failure.
func TestRunReturnsAPartsFailure(t *testing.T) {
	h, err := New(testConfig(t), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.Run(context.Background()) }()
	waitServing(t, h.HTTPAddr())
	if err := h.httpLn.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "http server") || !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Run = %v, want the HTTP server's failure", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after a part failed")
	}
}

// TestRunStopsCleanlyOnContext: when its context ends, Run shuts the hub
// down and returns nil.
func TestRunStopsCleanlyOnContext(t *testing.T) {
	h, err := New(testConfig(t), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	waitServing(t, h.HTTPAddr())
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// waitServing waits until the hub at addr answers /healthz, which it only
// does once its HTTP server runs.
func waitServing(t *testing.T, addr string) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get("http://" + addr + "/healthz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never served: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunStoppedBeforeStart: a context that ended before Run started the
// parts is a clean stop, not a failure.
func TestRunStoppedBeforeStart(t *testing.T) {
	h, err := New(testConfig(t), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.Run(ctx); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}
