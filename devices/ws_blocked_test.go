package devices

import (
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
