package auth

import (
	"fmt"
	"testing"
)

// BenchmarkWatcher measures a watcher token check (one per stream and
// per request of a watcher) among 1 000 watcher credentials.
func BenchmarkWatcher(b *testing.B) {
	a := newBenchAuth(b)
	tok, err := a.IssueWatcher("bench", filters(b, "telemetry/#"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := a.Watcher(tok); !ok {
			b.Fatal("refused")
		}
	}
}

// BenchmarkDevice measures a device token check (one per connection).
func BenchmarkDevice(b *testing.B) {
	a := newBenchAuth(b)
	tok, err := a.IssueDevice("bench")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !a.Device("bench", tok) {
			b.Fatal("refused")
		}
	}
}

// BenchmarkAllowFilter measures the scope check of one subscription
// against a watcher with 8 scopes, the last one covering it.
func BenchmarkAllowFilter(b *testing.B) {
	var names []string
	for i := range 7 {
		names = append(names, fmt.Sprintf("telemetry/pump-%d/#", i))
	}
	scopes := filters(b, append(names, "telemetry/+/+")...)
	f := mustFilter(b, "telemetry/+/temp")
	b.ReportAllocs()
	for b.Loop() {
		if !AllowFilter(scopes, f) {
			b.Fatal("refused")
		}
	}
}

func newBenchAuth(b *testing.B) *Auth {
	b.Helper()
	ws := make([]WatcherConfig, 1000)
	for i := range ws {
		ws[i] = WatcherConfig{Name: fmt.Sprintf("w%d", i), Token: fmt.Sprintf("watcher-token-%08d", i), Topics: []string{"#"}}
	}
	a, err := New(Config{Path: b.TempDir() + "/" + FileName, Watchers: ws, Logger: discard()})
	if err != nil {
		b.Fatal(err)
	}
	return a
}
