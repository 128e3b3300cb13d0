package hub

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
)

// refused checks that a GET of path is answered 503 with Retry-After and
// a JSON error, as a client past a connection cap sees it.
func refused(t *testing.T, h *Hub, path string) {
	t.Helper()
	resp, err := http.Get("http://" + h.HTTPAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error struct{ Code, Message string }
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || body.Error.Code != "unavailable" {
		t.Fatalf("GET %s past the cap: %d Retry-After %q %+v, want 503 with Retry-After and a JSON error",
			path, resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}

func TestConnectionCapStillAnswersProbes(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxConnections = 3
	h := startHub(t, cfg)
	dev := dialDevice(t, h, "d1")
	dev.send(t, `{"type":"heartbeat"}`)
	openSSE(t, h, url.Values{"topic": {"#"}}, "")
	last := openSSE(t, h, url.Values{"topic": {"#"}}, "")

	refused(t, h, "/v1/stream")
	if got := upgradeStatus(t, h, "/v1/stream/ws", nil); got != http.StatusServiceUnavailable {
		t.Fatalf("ws watcher past the cap: %d, want 503", got)
	}
	if got := upgradeStatus(t, h, "/v1/devices/d2/ws", nil); got != http.StatusServiceUnavailable {
		t.Fatalf("ws device past the cap: %d, want 503", got)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get("http://" + h.HTTPAddr() + path)
		if err != nil {
			t.Fatalf("%s at the cap: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s at the cap: %d, want 200", path, resp.StatusCode)
		}
	}

	last.close() // a slot frees when a watcher leaves
	waitFor(t, "a free slot", func() bool {
		return upgradeStatus(t, h, "/v1/stream/ws", nil) == http.StatusSwitchingProtocols
	})
}

func TestConnectionCapPerAddress(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxConnectionsPerAddress = 2
	h := startHub(t, cfg)
	d := dialDevice(t, h, "d1")
	d.send(t, `{"type":"heartbeat"}`)
	openSSE(t, h, url.Values{"topic": {"#"}}, "")
	refused(t, h, "/v1/stream")
	if got := upgradeStatus(t, h, "/v1/devices/d2/ws", nil); got != http.StatusServiceUnavailable {
		t.Fatalf("ws device past the per-address cap: %d, want 503", got)
	}
}

func TestFDRoom(t *testing.T) {
	tests := []struct {
		nofile uint64
		mqtt   int
		want   int
	}{
		{1 << 20, 10_000, 1<<20 - fdReserve - 10_000},
		{20_000, 10_000, (20_000 - fdReserve) / 2},
		{1024, 10_000, (1024 - fdReserve) / 2}, // too few for both: half of what is left
		{1024, 0, 1024 - fdReserve},
		{10, 0, 2},
	}
	for _, tt := range tests {
		if got := fdRoom(tt.nofile, tt.mqtt); got != tt.want {
			t.Errorf("fdRoom(%d, %d) = %d, want %d", tt.nofile, tt.mqtt, got, tt.want)
		}
	}
}
