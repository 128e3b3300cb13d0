package presence

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/telehub/telehub/bridge"
)

// waitUntil polls cond, under the Tracker's mutex, until it holds; the
// guard only fires on a failure.
func waitUntil(t *testing.T, l *Tracker, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		ok := cond()
		l.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A Sink that blocks on one device's event (a full storage queue) holds up
// that device's later changes, which keep their order, and nobody else.
func TestTrackerBlockedSinkHoldsOnlyItsDevice(t *testing.T) {
	l, rec := newTestTracker(t)
	blocked, release := rec.block("slow")
	var wg sync.WaitGroup
	wg.Go(func() {
		if s := l.Connect("slow", "ws", bridge.ReasonConnect); s != 1 {
			t.Errorf("first session of slow = %d, want 1", s)
		}
	})
	if got := <-blocked; got != "slow session=1 online=true" {
		t.Fatalf("blocked event %q", got)
	}

	// The slow device's next changes wait for their turn, in order.
	wg.Go(func() { l.Disconnect("slow", 1, bridge.ReasonDisconnect) })
	waitUntil(t, l, "the disconnect to wait for its turn", func() bool { return l.devices["slow"].waiting == 1 })
	wg.Go(func() {
		if s := l.Connect("slow", "ws", bridge.ReasonConnect); s != 2 {
			t.Errorf("second session of slow = %d, want 2", s)
		}
	})
	waitUntil(t, l, "the reconnect to wait for its turn", func() bool { return l.devices["slow"].waiting == 2 })

	// Every other device goes on meanwhile, and so do the slow device's
	// signs of life, which emit nothing.
	for _, id := range []string{"a", "b", "c"} {
		s := l.Connect(id, "mqtt", bridge.ReasonConnect)
		l.Heard(id, "mqtt")
		l.Disconnect(id, s, bridge.ReasonDisconnect)
	}
	if s, started := l.Heard("slow", "ws"); s != 2 || started {
		t.Fatalf("Heard(slow) = %d, %v; want 2, false", s, started)
	}
	wantEvents(t, rec.take(),
		"a online=true mqtt session=1 connect", "a online=false mqtt session=1 disconnect",
		"b online=true mqtt session=1 connect", "b online=false mqtt session=1 disconnect",
		"c online=true mqtt session=1 connect", "c online=false mqtt session=1 disconnect",
	)

	release()
	for range 2 {
		<-blocked // the later events of slow pass the gate, in order
	}
	wg.Wait()
	wantEvents(t, rec.take(),
		"slow online=true ws session=1 connect",
		"slow online=false ws session=1 disconnect",
		"slow online=true ws session=2 connect",
	)
}

// Concurrent changes of one device reach the Sink in the order of their
// sessions, however the callers' goroutines interleave.
func TestTrackerConcurrentChangesKeepOrder(t *testing.T) {
	l, rec := newTestTracker(t)
	const callers, rounds = 8, 200
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range rounds {
				s := l.Connect("d1", "ws", bridge.ReasonConnect)
				l.Disconnect("d1", s, bridge.ReasonDisconnect)
			}
		})
	}
	wg.Wait()
	var last uint64
	online := false
	for _, e := range rec.take() {
		switch {
		case e.Online && e.Session != last+1:
			t.Fatalf("online event of session %d after session %d", e.Session, last)
		case !e.Online && (e.Session != last || !online):
			t.Fatalf("offline event of session %d while session %d online=%v", e.Session, last, online)
		}
		last, online = e.Session, e.Online
	}
	if last != callers*rounds {
		t.Fatalf("last session %d, want %d", last, callers*rounds)
	}
}

// Shutdown gives up when ctx ends while the timer goroutine waits for the
// Sink, and a later Shutdown waits for it again.
func TestTrackerShutdownWaitsForTheSink(t *testing.T) {
	rec := &recordingSink{}
	l, err := New(Config{Sink: rec, Timeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	blocked, release := rec.block("d1")
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { l.Connect("d1", "ws", bridge.ReasonConnect) })
	<-blocked // the connect event waits: the timeout's event waits behind it
	waitUntil(t, l, "the timeout to wait for its turn", func() bool { return l.devices["d1"].waiting == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown with an ended context = %v, want context.Canceled", err)
	}
	release()
	wg.Wait()
	if err := l.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}
