package presence

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/telehub/telehub/bridge"
)

// Restate emits the online event of each device online over the
// transport, with its session and the reason its session began with, and
// nothing for the others.
func TestTrackerRestate(t *testing.T) {
	l, rec := newTestTracker(t)
	l.Connect("w1", "ws", bridge.ReasonConnect)
	l.Connect("w1", "ws", bridge.ReasonConnect) // a replacement: session 2
	l.Heard("w2", "ws")                         // first known by a frame
	s := l.Connect("w3", "ws", bridge.ReasonConnect)
	l.Disconnect("w3", s, bridge.ReasonDisconnect)
	l.Connect("m1", "mqtt", bridge.ReasonConnect)
	rec.take()

	if n := l.Restate("ws"); n != 2 {
		t.Fatalf("Restate(ws) = %d, want 2", n)
	}
	got := rec.take()
	slices.SortFunc(got, func(a, b presenceEvent) int { return strings.Compare(a.Device, b.Device) })
	wantEvents(t, got, "w1 online=true ws session=2 connect", "w2 online=true ws session=1 message")
	if s, online := l.Session("w1"); s != 2 || !online {
		t.Fatalf("Session(w1) = %d, %v after Restate; want 2, true", s, online)
	}
	if n := l.Restate("lora"); n != 0 {
		t.Fatalf("Restate of a transport nobody uses = %d", n)
	}
	if ev := rec.take(); len(ev) != 0 {
		t.Fatalf("Restate of a transport nobody uses emitted %v", ev)
	}
}

// A restated event takes its turn among the device's changes: when the
// device goes offline while its earlier event waits, the offline comes
// last.
func TestTrackerRestateKeepsOrder(t *testing.T) {
	l, rec := newTestTracker(t)
	blocked, release := rec.block("slow")
	var wg sync.WaitGroup
	wg.Go(func() { l.Connect("slow", "ws", bridge.ReasonConnect) })
	<-blocked
	wg.Go(func() {
		if n := l.Restate("ws"); n != 1 {
			t.Errorf("Restate(ws) = %d, want 1", n)
		}
	})
	waitUntil(t, l, "the restated event to wait for its turn", func() bool { return l.devices["slow"].waiting == 1 })
	wg.Go(func() { l.Disconnect("slow", 1, bridge.ReasonDisconnect) })
	waitUntil(t, l, "the disconnect to wait for its turn", func() bool { return l.devices["slow"].waiting == 2 })
	release()
	for range 2 {
		<-blocked
	}
	wg.Wait()
	wantEvents(t, rec.take(),
		"slow online=true ws session=1 connect",
		"slow online=true ws session=1 connect",
		"slow online=false ws session=1 disconnect",
	)
}

// Open starts the session at once; its event is submitted by submit, and
// the device's later changes wait for it, so a second connection's event
// and the first's disconnect still come in session order.
func TestTrackerOpenSubmitsInTurn(t *testing.T) {
	l, rec := newTestTracker(t)
	first, submit := l.Open("d1", "ws", bridge.ReasonConnect)
	if s, online := l.Session("d1"); s != 1 || !online || first != 1 {
		t.Fatalf("after Open: session %d, Session() = %d, %v; want 1, 1, true", first, s, online)
	}
	var wg sync.WaitGroup
	wg.Go(func() { l.Connect("d1", "ws", bridge.ReasonConnect) }) // session 2 waits for the first's event
	waitUntil(t, l, "the second connection's event to wait", func() bool { return l.devices["d1"].waiting == 1 })
	if ev := rec.take(); len(ev) != 0 {
		t.Fatalf("events before the first was submitted: %v", ev)
	}
	submit()
	wg.Wait()
	l.Disconnect("d1", 1, bridge.ReasonDisconnect) // the replaced session: nothing
	wantEvents(t, rec.take(),
		"d1 online=true ws session=1 connect",
		"d1 online=true ws session=2 connect",
	)
}
