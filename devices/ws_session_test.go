package devices

import (
	"context"
	"fmt"
	"testing"
)

// When storing one device's presence event blocks (a full storage queue),
// only that device waits: other devices connect, get their acks and go
// offline meanwhile, and the blocked device's own presence stays in
// session order once storage moves again, its older connection closed as
// replaced and never marking it offline.
func TestWSBlockedPresenceHoldsUpOnlyItsDevice(t *testing.T) {
	env := newWSEnv(t, WSConfig{})
	blocked, release := env.rec.block("slow")
	released := false
	defer func() {
		if !released {
			release() // let the blocked connections end with the test
		}
	}()

	first := dial(t, env.url("slow"), nil)
	if got := <-blocked; got != "slow session=1 online=true" {
		t.Fatalf("blocked event %q", got)
	}
	second := dial(t, env.url("slow"), nil) // its event waits behind the first
	waitFor(t, "the second connection's session", func() bool {
		s, online := env.live.Session("slow")
		return s == 2 && online
	})

	const others = 10
	for i := range others {
		c := dial(t, env.url(fmt.Sprintf("fast-%d", i)), nil)
		c.send(t, fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"temp":1}}`, i))
		if got, want := c.next(t), fmt.Sprintf(`msg:{"type":"ack","seq":%d}`, i); got != want {
			t.Fatalf("fast-%d: answer %s, want %s", i, got, want)
		}
		c.stop()
	}
	got := env.rec.wait(t, 2*others)
	for i := range others {
		id := fmt.Sprintf("fast-%d", i)
		wantEvents(t, eventsOf(got, id),
			id+" online=true ws session=1 connect",
			id+" online=false ws session=1 disconnect")
	}
	if n := len(eventsOf(got, "slow")); n != 0 {
		t.Fatalf("%d events of the blocked device stored before storage moved", n)
	}

	release()
	released = true
	if ce := first.closeError(t); ce.Code != closeReplaced {
		t.Fatalf("first connection closed with %d, want %d", ce.Code, closeReplaced)
	}
	second.send(t, `{"type":"telemetry","seq":1,"values":{"temp":1}}`)
	if got := second.next(t); got != `msg:{"type":"ack","seq":1}` {
		t.Fatalf("second connection: answer %s", got)
	}
	second.stop()
	wantEvents(t, env.rec.wait(t, 3),
		"slow online=true ws session=1 connect",
		"slow online=true ws session=2 connect",
		"slow online=false ws session=2 disconnect")
}

// eventsOf returns the events of device among events.
func eventsOf(events []presenceEvent, device string) []presenceEvent {
	var out []presenceEvent
	for _, e := range events {
		if e.Device == device {
			out = append(out, e)
		}
	}
	return out
}

// The device's current connection owns every WebSocket session: the one
// it registered with, and those begun by frames of any of the device's
// connections after a timeout.
func TestWSSessionOwnership(t *testing.T) {
	live := newFakePresence()
	s, err := NewWS(WSConfig{Bridge: &fakeBridge{}, Presence: live})
	if err != nil {
		t.Fatal(err)
	}
	conn := func(session uint64) *wsConn { return &wsConn{ws: s, topic: "devices/d1/ws", session: session} }
	older, newer := conn(2), conn(3)

	if _, ok := s.register(newer); !ok {
		t.Fatal("first connection not registered")
	}
	if old, ok := s.register(older); ok || old != newer {
		t.Fatalf("register of an older session: ok %v, old %p; want refused for %p", ok, old, newer)
	}
	s.began(older, 4) // a late frame of the older connection after a timeout
	if newer.session != 4 {
		t.Fatalf("current connection's session %d, want 4", newer.session)
	}
	s.began(newer, 5)
	if newer.session != 5 {
		t.Fatalf("current connection's session %d, want 5", newer.session)
	}

	// With no connection current, the one whose frame began the session
	// becomes current, so that its close ends the session.
	s.mu.Lock()
	delete(s.devices, "d1")
	s.mu.Unlock()
	s.began(older, 6)
	if s.devices["d1"] != older || older.session != 6 || !older.registered || s.Connected() != 1 {
		t.Fatalf("after began with no current connection: current %p (want %p), session %d, registered %v",
			s.devices["d1"], older, older.session, older.registered)
	}

	// While shutting down, such a session ends at once.
	live.Connect("d1", "ws", "message") // session 1 of the fake
	s.mu.Lock()
	delete(s.devices, "d1") // the fakes have no socket for Shutdown to close
	s.mu.Unlock()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	live.expect(t, "online d1 1 message")
	s.began(older, 1)
	live.expect(t, "offline d1 1 disconnect")
}

// TestWSStopSignal checks the channel that ends a paced wait: made on the
// first wait only, closed when the connection dies, and refused to a
// connection dead already.
func TestWSStopSignal(t *testing.T) {
	c := &wsConn{}
	if c.stopped != nil {
		t.Fatal("a new connection holds a stop channel")
	}
	stopped, alive := c.stopSignal()
	if !alive || stopped == nil {
		t.Fatalf("live connection: %v, %v", stopped, alive)
	}
	if again, _ := c.stopSignal(); again != stopped {
		t.Fatal("a second wait got another channel")
	}
	c.kill()
	select {
	case <-stopped:
	default:
		t.Fatal("the channel is open after the connection died")
	}
	if _, alive := c.stopSignal(); alive {
		t.Fatal("a dead connection may wait")
	}
	dead := &wsConn{}
	dead.kill() // dies before any wait: nothing to close
	if _, alive := dead.stopSignal(); alive {
		t.Fatal("a connection dead before its first wait may wait")
	}
}
