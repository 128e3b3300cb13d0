package hub

import (
	"encoding/json"
	"net"
	"net/http"
	"testing"
)

// Every error of the HTTP surface is the JSON error body, including
// requests no route or library handles.
func TestErrorsAreJSON(t *testing.T) {
	h := startHub(t, testConfig(t))
	tests := []struct {
		method, path string
		status       int
		code         string
	}{
		{http.MethodGet, "/v1/stream/ws", 400, "bad_request"},     // not a WebSocket upgrade
		{http.MethodGet, "/v1/devices/d1/ws", 400, "bad_request"}, // same, device side
		{http.MethodPost, "/v1/events", 405, "method_not_allowed"},
		{http.MethodPut, "/v1/devices/d1", 405, "method_not_allowed"},
		{http.MethodGet, "/v2/nothing", 404, "not_found"},
		{http.MethodGet, "/v1/devices/unknown", 404, "not_found"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, "http://"+h.HTTPAddr()+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error struct{ Code, Message string }
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tt.status || body.Error.Code != tt.code || body.Error.Message == "" {
			t.Errorf("%s %s: %d %+v (%v), want %d with code %s", tt.method, tt.path, resp.StatusCode, body, err, tt.status, tt.code)
		}
	}
}

// A hub that cannot be built releases what it had taken: here the HTTP
// port stays free when the debug address is unusable.
func TestNewFailureReleasesListeners(t *testing.T) {
	cfg := testConfig(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTPAddr = free.Addr().String()
	free.Close()
	cfg.DebugAddr = busy.Addr().String() // taken: New fails after binding HTTP
	if _, err := New(cfg, testLogger(t)); err == nil {
		t.Fatal("New succeeded with a busy debug address")
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		t.Fatalf("the HTTP port was not released: %v", err)
	}
	ln.Close()
	// The data directory was released too: a second hub opens it.
	cfg.DebugAddr = ""
	startHub(t, cfg)
}
