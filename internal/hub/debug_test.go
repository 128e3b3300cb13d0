package hub

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a log sink safe for the hub's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The debug server obeys the loopback rule of the other listeners.
func TestDebugAddrLoopbackRule(t *testing.T) {
	cfg := testConfig(t)
	cfg.DebugAddr = "0.0.0.0:0"
	if _, err := New(cfg, testLogger(t)); err == nil || !strings.Contains(err.Error(), "debug_addr") {
		t.Fatalf("a public debug address without credentials: %v", err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "debug_addr") {
		t.Fatalf("Validate: %v", err)
	}

	cfg.Insecure = true
	var logs syncBuffer
	h, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer stopHub(t, h)
	for _, want := range []string{"--insecure", "debug_addr", "pprof debug server asks for no credentials"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// The debug server serves pprof but never the command line, which may
// hold a token.
func TestDebugServerHidesCommandLine(t *testing.T) {
	cfg := testConfig(t)
	cfg.DebugAddr = "127.0.0.1:0"
	cfg.AdminToken = "admin-token-on-the-command-line"
	h := startHub(t, cfg)
	base := "http://" + h.debugLn.Addr().String() + "/debug/pprof/"
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, _ := get(""); code != http.StatusOK {
		t.Fatalf("pprof index: %d", code)
	}
	if code, _ := get("goroutine?debug=1"); code != http.StatusOK {
		t.Fatalf("goroutine profile: %d", code)
	}
	for _, path := range []string{"cmdline", "cmdline/", "cmdline?x=1"} {
		code, body := get(path)
		if code != http.StatusNotFound || strings.Contains(body, "test") {
			t.Errorf("%s: %d %q", path, code, body)
		}
	}
}

// noEnv is an empty environment for config.Load.
func noEnv(string) (string, bool) { return "", false }
