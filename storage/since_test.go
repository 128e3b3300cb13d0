package storage

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/telehub/telehub/bridge"
)

// fillSeconds stores n writes of two events each, write i seen at
// t0 + i seconds: events 2i+1 and 2i+2.
func fillSeconds(t testing.TB, s *Store, n int) {
	t.Helper()
	for i := range n {
		submitSync(t, s, reading("d1", t0.Add(time.Duration(i)*time.Second), i, "temp", "hum"))
	}
}

func TestAfterTime(t *testing.T) {
	s := openStore(t, testConfig(t))
	if got, err := s.AfterTime(t0); err != nil || got != 0 {
		t.Fatalf("AfterTime of an empty log = %d, %v; want 0", got, err)
	}
	fillSeconds(t, s, 50) // events 1..100
	tests := []struct {
		name string
		t    time.Time
		want uint64
	}{
		{"before every event", t0.Add(-time.Hour), 0},
		{"the first write's time", t0, 0},
		{"exactly a write's time", t0.Add(20 * time.Second), 40},
		{"between two writes", t0.Add(20*time.Second + time.Millisecond), 42},
		{"the last write's time", t0.Add(49 * time.Second), 98},
		{"after every event", t0.Add(time.Hour), 100},
	}
	for _, tt := range tests {
		if got, err := s.AfterTime(tt.t); err != nil || got != tt.want {
			t.Errorf("%s: AfterTime = %d, %v; want %d", tt.name, got, err, tt.want)
		}
	}
}

func TestAfterTimeTrimmed(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxEvents = 60
	s := openStore(t, cfg)
	fillSeconds(t, s, 50) // events 41..100 retained
	eventually(t, "retention to 60 events", func() bool {
		oldest, _ := s.OldestID()
		return oldest == 41
	})
	if got, err := s.AfterTime(t0); err != nil || got != 40 {
		t.Fatalf("AfterTime before the oldest retained = %d, %v; want 40", got, err)
	}
	id, at, ok := s.OldestEvent()
	if !ok || id != 41 || !at.Equal(t0.Add(20*time.Second)) {
		t.Fatalf("OldestEvent = %d, %v, %v; want 41 at t0+20s", id, at, ok)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AfterTime(t0); !errors.Is(err, ErrClosed) {
		t.Fatalf("AfterTime after Close: %v, want ErrClosed", err)
	}
}

func TestClusterStoreIDs(t *testing.T) {
	cfg := testConfig(t)
	cfg.Cluster, cfg.ResumeMargin = true, 10*time.Second
	s := openStore(t, cfg)
	fillSeconds(t, s, 50)
	ids := s.IDs()
	if !ids.Timed() {
		t.Fatal("a cluster store's ids carry no time")
	}
	oldest, _, _ := FormatOldest(s)
	if want := ids.FormatAt(1, t0); oldest != want {
		t.Fatalf("oldest = %q, want %q", oldest, want)
	}
	// A peer's id of t0+30s resumes from t0+20s (the margin):
	// events 41 on.
	peer := NewIDCodec("0123456789ab").InCluster(0).FormatAt(5, t0.Add(30*time.Second))
	_, err := ResumePoint(s, peer, s.LastID())
	var gap *GapError
	if !errors.As(err, &gap) || !gap.Peer() || gap.After != 40 || !gap.Since.Equal(t0.Add(20*time.Second)) {
		t.Fatalf("ResumePoint(%q) = %v (%+v), want a peer's gap after 40", peer, err, gap)
	}
	// Its own ids, with or without their time, resume as always.
	for _, own := range []string{ids.FormatAt(40, t0.Add(19*time.Second)), ids.Format(40)} {
		if got, err := ResumePoint(s, own, s.LastID()); err != nil || got != 40 {
			t.Fatalf("ResumePoint(%q) = %d, %v; want 40", own, got, err)
		}
	}
}

func TestResumeMarginConfig(t *testing.T) {
	cfg := testConfig(t)
	cfg.ResumeMargin = -time.Second
	if _, err := Open(cfg); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Open with a negative margin: %v, want ErrInvalidConfig", err)
	}
	cfg = testConfig(t)
	cfg.Cluster, cfg.ResumeMargin = true, time.Minute
	s := openStore(t, cfg)
	peer := NewIDCodec("0123456789ab").InCluster(0).FormatAt(5, t0)
	if since, ok := s.IDs().PeerSince(peer); !ok || !since.Equal(t0.Add(-time.Minute)) {
		t.Fatalf("PeerSince = %v, %v; want a minute before t0", since, ok)
	}
}

// BenchmarkAfterTime measures finding the events of a time in a log of
// 1 000 000 events (writes of 10 events, one a millisecond).
func BenchmarkAfterTime(b *testing.B) {
	const writes, perWrite = 100_000, 10
	s := openStore(b, testConfig(b))
	for i := 0; i < writes; i += 1000 {
		done := make(chan struct{}, 1000)
		for j := range 1000 {
			w := &bridge.Write{Device: "d1", Seen: t0.Add(time.Duration(i+j) * time.Millisecond)}
			for k := range perWrite {
				w.Events = append(w.Events, bridge.Event{Kind: bridge.KindTelemetry,
					Topic: "telemetry/d1/temp", Data: fmt.Appendf(nil, `{"value":%d}`, k)})
			}
			w.Done = func(bridge.Result) { done <- struct{}{} }
			if err := s.Submit(w); err != nil {
				b.Fatal(err)
			}
		}
		for range 1000 {
			<-done
		}
	}
	if s.LastID() != writes*perWrite {
		b.Fatalf("stored %d events", s.LastID())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		at := (i * 7919) % writes
		got, err := s.AfterTime(t0.Add(time.Duration(at) * time.Millisecond))
		if err != nil || got != uint64(at*perWrite) {
			b.Fatalf("AfterTime(+%d ms) = %d, %v; want %d", at, got, err, at*perWrite)
		}
	}
}
