package devices

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/telehub/telehub/bridge"
)

// These tests hold command routes (mqtt_command_routes.go) to what a
// mochi subscription does where the two could differ: the client's
// Receive Maximum, a wildcard of the same client that matches too, the
// server's counters, and the session's records once it moved or ended.

func routeCommand(i int) *bridge.Command {
	return &bridge.Command{ID: fmt.Sprintf("%016x", i), Device: "d1", Name: "ping", Expires: time.Unix(1, 0)}
}

// routed reports whether cl has a route of device.
func (b *mqttTestBroker) routed(cl *mqtt.Client, device string) bool {
	return b.hook.routes.holds(cl, commandsTopic(device))
}

// client returns the broker's client of id.
func (b *mqttTestBroker) client(t *testing.T, id string) *mqtt.Client {
	t.Helper()
	cl, ok := b.server.Clients.Get(id)
	if !ok {
		t.Fatalf("no client %q", id)
	}
	return cl
}

// heldFor returns how many publishes are held for cl's route.
func (b *mqttTestBroker) heldFor(cl *mqtt.Client) int {
	r := b.hook.routes
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.held[r.byClient[cl]])
}

// awayRoute connects d1 with an MQTT 5 session of props that outlives
// its connection, routes its commands, disconnects it and returns its
// client once the session waits for it.
func awayRoute(t *testing.T, b *mqttTestBroker, props packets.Properties) *mqtt.Client {
	t.Helper()
	dev, _ := dialRaw(t, b.Addr().String(), rawConnect{version: 5, id: "d1", props: props})
	dev.subscribe(1, "devices/d1/commands")
	dev.nextOf(packets.Suback)
	old := b.client(t, "d1")
	dev.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	dev.closed()
	waitFor(t, "the session to wait for its client", func() bool { return old.Closed() && b.conns() == 0 })
	return old
}

func puback(id uint16) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id}
}

// A client with Receive Maximum 1 has one command publish unacknowledged
// at a time: the others wait in its session, in order, each written on
// the PUBACK of the one before.
func TestRouteKeepsToReceiveMaximum(t *testing.T) {
	cmd := &recordingCommander{answers: make(chan bridge.CommandAnswer, 4)}
	b := startMQTTBroker(t, func(c *BrokerConfig) { c.Commands = cmd })
	dev, _ := dialRaw(t, b.Addr().String(), rawConnect{version: 5, id: "d1", clean: true,
		props: packets.Properties{ReceiveMaximum: 1}})
	dev.subscribe(1, "devices/d1/commands")
	dev.nextOf(packets.Suback)
	cl := b.client(t, "d1")
	if !b.routed(cl, "d1") {
		t.Fatal("the subscription is not a route")
	}

	for i := 1; i <= 3; i++ {
		if !b.SendCommand("d1", routeCommand(i)) {
			t.Fatalf("command %d not published", i)
		}
	}
	waitFor(t, "two publishes held", func() bool { return b.heldFor(cl) == 2 })
	for i := 1; i <= 3; i++ {
		pk := dev.nextOf(packets.Publish)
		if want := fmt.Sprintf(`"id":"%016x"`, i); !bytes.Contains(pk.Payload, []byte(want)) {
			t.Fatalf("publish %d is %s", i, pk.Payload)
		}
		if n := b.heldFor(cl); n != 3-i {
			t.Fatalf("%d publishes held after publish %d was written, want %d", n, i, 3-i)
		}
		dev.send(puback(pk.PacketID))
		if a := <-cmd.answers; a.ID != routeCommand(i).ID {
			t.Fatalf("confirmed %q, want command %d", a.ID, i)
		}
	}
}

// A route and a wildcard of the same client that matches its commands at
// QoS 0 deliver each command once, at QoS 1, as mochi does with two
// subscriptions of one client: the route becomes a mochi subscription.
// Either order of the two SUBSCRIBEs.
func TestRouteWithMatchingWildcard(t *testing.T) {
	for _, wildcardFirst := range []bool{false, true} {
		t.Run(fmt.Sprint("wildcard first ", wildcardFirst), func(t *testing.T) {
			cmd := &recordingCommander{answers: make(chan bridge.CommandAnswer, 4)}
			b := startMQTTBroker(t, func(c *BrokerConfig) { c.Commands = cmd })
			dev, _ := dialRaw(t, b.Addr().String(), rawConnect{version: 4, id: "d1", clean: true})
			subscribe := func(id uint16, filter string, qos byte) {
				dev.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: id,
					Filters: packets.Subscriptions{{Filter: filter, Qos: qos}}})
				dev.nextOf(packets.Suback)
			}
			if wildcardFirst {
				subscribe(1, "devices/d1/#", 0)
				subscribe(2, "devices/d1/commands", 1)
			} else {
				subscribe(1, "devices/d1/commands", 1)
				subscribe(2, "devices/d1/#", 0)
			}
			for i := 1; i <= 2; i++ {
				b.SendCommand("d1", routeCommand(i))
				// A second copy of a command would come before the next one.
				pk := dev.nextOf(packets.Publish)
				if want := fmt.Sprintf(`"id":"%016x"`, i); !bytes.Contains(pk.Payload, []byte(want)) || pk.FixedHeader.Qos != 1 {
					t.Fatalf("got QoS %d %s, want command %d at QoS 1", pk.FixedHeader.Qos, pk.Payload, i)
				}
				dev.send(puback(pk.PacketID))
				if a := <-cmd.answers; a.ID != routeCommand(i).ID {
					t.Fatalf("confirmed %q, want command %d", a.ID, i)
				}
			}
			if b.routed(b.client(t, "d1"), "d1") {
				t.Fatal("the route outlived a matching wildcard of its client")
			}
		})
	}
}

// A command that goes to routes alone counts as one message received,
// as the broker counts every publish it handles.
func TestRouteCommandCounted(t *testing.T) {
	b := startMQTTBroker(t, func(c *BrokerConfig) { c.Commands = &recordingCommander{} })
	dev, _ := dialRaw(t, b.Addr().String(), rawConnect{version: 4, id: "d1", clean: true})
	dev.subscribe(1, "devices/d1/commands")
	dev.nextOf(packets.Suback)
	before := atomic.LoadInt64(&b.server.Info.MessagesReceived)
	b.SendCommand("d1", routeCommand(1))
	dev.nextOf(packets.Publish)
	if got := atomic.LoadInt64(&b.server.Info.MessagesReceived) - before; got != 1 {
		t.Fatalf("%d messages received counted, want 1", got)
	}
}

// An empty retained publish on a commands topic is refused like any
// publish there: there is no retained message to clear, and none of it
// reaches a subscriber.
func TestEmptyRetainedPublishOnCommandsTopicRefused(t *testing.T) {
	b := startMQTTBroker(t, func(c *BrokerConfig) { c.Commands = &recordingCommander{} })
	addr := b.Addr().String()
	watcher, _ := dialRaw(t, addr, rawConnect{version: 4, id: "watcher", clean: true})
	watcher.subscribe(1, "devices/+/commands")
	watcher.nextOf(packets.Suback)

	pub, _ := dialRaw(t, addr, rawConnect{version: 5, id: "publisher", clean: true})
	pub.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
		TopicName: "devices/d1/commands", PacketID: 7})
	if ack := pub.nextOf(packets.Puback); ack.ReasonCode != packets.ErrTopicNameInvalid.Code {
		t.Fatalf("PUBACK reason 0x%02x, want 0x%02x", ack.ReasonCode, packets.ErrTopicNameInvalid.Code)
	}
	b.SendCommand("d1", routeCommand(1))
	if pk := watcher.nextOf(packets.Publish); len(pk.Payload) == 0 {
		t.Fatal("the empty retained publish reached a subscriber")
	}
}

// A session that resumes takes its route and its command publishes over;
// the broker forgets what it noted of the old client's.
func TestRouteResumeForgetsTheOldClient(t *testing.T) {
	cmd := &recordingCommander{answers: make(chan bridge.CommandAnswer, 4)}
	b := startMQTTBroker(t, func(c *BrokerConfig) { c.Commands = cmd })
	props := packets.Properties{SessionExpiryInterval: 60, SessionExpiryIntervalFlag: true}
	old := awayRoute(t, b, props)

	b.SendCommand("d1", routeCommand(1)) // kept in the session
	waitFor(t, "the command publish kept in the session noted", func() bool { return b.hook.commandsUnacked(old) == 1 })
	next, ack := dialRaw(t, b.Addr().String(), rawConnect{version: 5, id: "d1", props: props})
	if !ack.SessionPresent {
		t.Fatal("session not resumed")
	}
	pk := next.nextOf(packets.Publish)
	if b.hook.commandsUnacked(old) != 0 {
		t.Fatal("the old client's command publishes are still noted")
	}
	if !b.routed(b.client(t, "d1"), "d1") || b.routed(old, "d1") {
		t.Fatal("the route did not move to the new client")
	}
	next.send(puback(pk.PacketID))
	if a := <-cmd.answers; a.ID != routeCommand(1).ID {
		t.Fatalf("confirmed %q", a.ID)
	}
}

// Nothing is written to a client before its CONNACK: a command for a
// route whose client is not answered yet stays in its session, sent
// once the CONNACK is (ResendInflightMessages), and mochi's writer of a
// client asked for before it starts after it.
func TestNothingWrittenBeforeConnack(t *testing.T) {
	b := startMQTTBroker(t, func(c *BrokerConfig) { c.Commands = &recordingCommander{} })
	dev, _ := dialRaw(t, b.Addr().String(), rawConnect{version: 4, id: "d1", clean: true})
	dev.subscribe(1, "devices/d1/commands")
	dev.nextOf(packets.Suback)
	cl := b.client(t, "d1")
	v, _ := b.sessions.live.Load(cl)
	s := v.(*mqttSession)

	s.connacked.Store(false) // as before the CONNACK
	rt := b.hook.routes.of("d1")[0]
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName: commandsTopic("d1"), Payload: []byte(`{"id":"x"}`)}
	if write := b.hook.prepareCommand(rt, &pk); write || cl.State.Inflight.Len() != 1 {
		t.Fatalf("before the CONNACK: write %v, %d in flight; want kept in the session", write, cl.State.Inflight.Len())
	}
	s.startWriter()
	if s.writing.Load() || !s.early.Load() {
		t.Fatal("mochi's writer started before the CONNACK")
	}
}

// The command publishes a resumed session sends again all at once count
// against the client's Receive Maximum: a new command waits until fewer
// than the maximum are unacknowledged.
func TestRouteReceiveMaximumAfterResume(t *testing.T) {
	cmd := &recordingCommander{answers: make(chan bridge.CommandAnswer, 4)}
	b := startMQTTBroker(t, func(c *BrokerConfig) { c.Commands = cmd })
	props := packets.Properties{SessionExpiryInterval: 60, SessionExpiryIntervalFlag: true, ReceiveMaximum: 1}
	old := awayRoute(t, b, props)
	b.SendCommand("d1", routeCommand(1))
	b.SendCommand("d1", routeCommand(2))
	waitFor(t, "both commands in the session", func() bool { return b.hook.commandsUnacked(old) == 2 })

	next, _ := dialRaw(t, b.Addr().String(), rawConnect{version: 5, id: "d1", props: props})
	first, second := next.nextOf(packets.Publish), next.nextOf(packets.Publish) // sent again together
	cl := b.client(t, "d1")
	b.SendCommand("d1", routeCommand(3))
	waitFor(t, "the new command held", func() bool { return b.heldFor(cl) == 1 })
	next.send(puback(first.PacketID))
	<-cmd.answers
	if n := b.heldFor(cl); n != 1 {
		t.Fatal("the new command went while two were unacknowledged")
	}
	next.send(puback(second.PacketID))
	<-cmd.answers
	if pk := next.nextOf(packets.Publish); !bytes.Contains(pk.Payload, []byte(routeCommand(3).ID)) {
		t.Fatalf("got %s, want command 3", pk.Payload)
	}
}

// SendCommand hands a route its command without waiting for the client:
// with the route's writer blocked on a client that does not read, the
// next command for the device still returns at once (its packet id is
// taken on the writer, under the client's lock that the blocked write
// holds).
func TestRouteSendCommandDoesNotWaitForTheClient(t *testing.T) {
	b, _ := startRouteBroker(t, func(c *BrokerConfig) {
		c.Limits.MaxQueuedBytes = 1 << 30
		c.Limits.MaxQueuedBytesTotal = 1 << 30
	})
	b.blockRouteWriter(t, routed(t, b, 4, "d1", true))
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.SendCommand("d1", routeCommand(1))
	}()
	select {
	case <-done:
	case <-time.After(waitGuard):
		t.Fatal("SendCommand waits for the blocked client")
	}
}
