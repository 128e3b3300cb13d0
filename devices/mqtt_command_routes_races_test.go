package devices

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/telehub/telehub/bridge"
)

// These tests stop a route's writer just before it readies a command (as
// a writer the scheduler left behind would be) and change the route's
// world meanwhile: a PUBACK, the session's end, a takeover.

// gatePrepare makes a route writer wait before it first readies command
// id; it returns a channel closed when the writer reached the gate, and
// the gate to open.
func gatePrepare(b *mqttTestBroker, id string) (reached, open chan struct{}) {
	reached, open = make(chan struct{}), make(chan struct{})
	prepare := b.hook.routes.prepare
	var once sync.Once
	b.hook.routes.prepare = func(rt *commandRoute, pk *packets.Packet) bool {
		if strings.Contains(string(pk.Payload), `"id":"`+id+`"`) {
			once.Do(func() {
				close(reached)
				<-open
			})
		}
		return prepare(rt, pk)
	}
	return reached, open
}

// A publish released from the held ones goes before a command readied
// after it: the client gets its commands in order.
func TestRouteReleasedGoesFirst(t *testing.T) {
	b, cmd := startRouteBroker(t, nil)
	c := routeConnect(5, "d1", true)
	c.props = packets.Properties{ReceiveMaximum: 2}
	d, _ := dialRaw(t, b.Addr().String(), c)
	d.wantSuback([]byte{1}, 1, commandsOfD1)
	reached, open := gatePrepare(b, "c4")
	b.command(t, "d1", "c1")
	b.command(t, "d1", "c2")
	p1, p2 := d.commandPublish("d1"), d.commandPublish("d1")
	b.command(t, "d1", "c3")
	cl := b.client(t, "d1")
	waitFor(t, "c3 held", func() bool { return b.heldFor(cl) == 1 })
	b.command(t, "d1", "c4")
	<-reached
	d.puback(p1.PacketID)
	d.puback(p2.PacketID)
	cmd.confirmed(t, "c1", "c2")
	close(open)
	for _, want := range []string{"c3", "c4"} {
		pk := d.commandPublish("d1")
		if got := commandID(t, pk); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
		d.puback(pk.PacketID)
	}
	cmd.confirmed(t, "c3", "c4")
}

// A publish released from the held ones is written even when the route's
// queue is full of commands not readied yet.
func TestRouteReleasedIntoFullQueue(t *testing.T) {
	b, cmd := startRouteBroker(t, func(c *BrokerConfig) { c.Limits.MaxQueued = 3 })
	d := routedReceiveMaximum1(t, b)
	cl := b.client(t, "d1")
	reached, open := gatePrepare(b, "c3")
	b.command(t, "d1", "c1")
	p1 := d.commandPublish("d1")
	b.command(t, "d1", "c2")
	waitFor(t, "c2 held", func() bool { return b.heldFor(cl) == 1 })
	b.command(t, "d1", "c3")
	<-reached
	for _, id := range []string{"c4", "c5", "c6"} { // the queue is full
		b.command(t, "d1", id)
	}
	d.puback(p1.PacketID)
	cmd.confirmed(t, "c1")
	close(open)
	if got := commandID(t, d.commandPublish("d1")); got != "c2" {
		t.Fatalf("got %s, want c2", got)
	}
}

// A command the writer readies after its route's session ended leaves no
// record of the client behind.
func TestRouteReadiedAfterSessionEnd(t *testing.T) {
	b, _ := startRouteBroker(t, nil)
	d := routed(t, b, 5, "d1", true)
	cl := b.client(t, "d1")
	reached, open := gatePrepare(b, "c1")
	b.command(t, "d1", "c1")
	<-reached
	d.disconnect()
	waitFor(t, "the session to end", func() bool { _, ok := b.server.Clients.Get("d1"); return !ok })
	before := b.dropped()
	close(open)
	waitFor(t, "the writer to end", func() bool { n, _ := routeWriters(); return n == 0 })
	b.hook.inflightMu.Lock()
	_, noted := b.hook.inflight[cl]
	b.hook.inflightMu.Unlock()
	_, queued := b.hook.queues.queues.Load(cl)
	if noted || queued || cl.State.Inflight.Len() > 0 || b.dropped() != before+1 {
		t.Fatalf("after the session ended: noted %v, queue record %v, session holds %d, dropped %v",
			noted, queued, cl.State.Inflight.Len(), b.dropped()-before)
	}
}

// A command the old connection's writer readies after a takeover that
// resumed the session reaches the new connection.
func TestRouteReadiedDuringTakeover(t *testing.T) {
	b, cmd := startRouteBroker(t, nil)
	d := routed(t, b, 5, "d1", false)
	old := b.client(t, "d1")
	reached, open := gatePrepare(b, "c1")
	b.command(t, "d1", "c1")
	<-reached
	next, ack := dialRaw(t, b.Addr().String(), routeConnect(5, "d1", false))
	if !ack.SessionPresent {
		t.Fatal("session not resumed")
	}
	d.closed()
	close(open)
	pk := next.commandPublish("d1")
	if got := commandID(t, pk); got != "c1" {
		t.Fatalf("got %s, want c1", got)
	}
	next.puback(pk.PacketID)
	cmd.confirmed(t, "c1")
	if n := b.hook.commandsUnacked(old); n != 0 || old.State.Inflight.Len() != 0 {
		t.Fatalf("the old client keeps %d noted, %d in its session", n, old.State.Inflight.Len())
	}
}

// A client with Receive Maximum 1 that acknowledges each command at once
// gets every one of many commands, each sent as the one before arrives:
// no publish stays held with nothing left to release it.
func TestRouteReceiveMaximumPaced(t *testing.T) {
	b := startMQTTBroker(t, func(c *BrokerConfig) { c.Commands = discardCommander{} })
	d := routedReceiveMaximum1(t, b)
	const n = 2000
	got := make(chan struct{}, 1)
	go func() {
		for range n {
			pk, err := d.read()
			if err != nil || pk.FixedHeader.Type != packets.Publish {
				return
			}
			got <- struct{}{}
			if _, err := d.conn.Write([]byte{packets.Puback << 4, 2, byte(pk.PacketID >> 8), byte(pk.PacketID)}); err != nil {
				return
			}
		}
	}()
	for i := range n {
		b.SendCommand("d1", routeCommand(i))
		select {
		case <-got:
		case <-time.After(waitGuard):
			cl := b.client(t, "d1")
			t.Fatalf("command %d never written: held %d, unacked %d, session holds %d",
				i, b.heldFor(cl), b.hook.commandsUnacked(cl), cl.State.Inflight.Len())
		}
	}
}

type discardCommander struct{}

func (discardCommander) Connected(string)                          {}
func (discardCommander) Answer(string, bridge.CommandAnswer) error { return nil }
