package devices

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// These tests hold command routes (mqtt_command_routes.go) to what a
// client gets from a mochi subscription to its devices/{id}/commands,
// from SUBACK to session resume; most run on both read paths.

// A SUBSCRIBE of exactly a device's commands takes a route: the SUBACK
// has the client's packet id and the QoS granted, mochi's topic tree has
// no entry for it and mochi's writer does not start, the device is
// reachable and told connected, a command comes as a QoS 1 publish whose
// PUBACK confirms it, and the route's writer ends once it is written. A
// clean disconnect ends the route.
func TestBrokerCommandRoute(t *testing.T) {
	reviewOnPaths(t, func(t *testing.T) {
		for _, tt := range []struct{ version, qos byte }{{4, 1}, {4, 2}, {5, 1}, {5, 2}} {
			t.Run(fmt.Sprintf("mqtt %d qos %d", tt.version, tt.qos), func(t *testing.T) {
				b, cmd := startRouteBroker(t, nil)
				base := b.subscriptions()
				d, _ := dialRaw(t, b.Addr().String(), routeConnect(tt.version, "d1", true))
				d.subscribeAt(7, tt.qos, packets.Properties{}, commandsOfD1)
				if ack := d.expect(packets.Suback); ack.PacketID != 7 || !bytes.Equal(ack.ReasonCodes, []byte{tt.qos}) {
					t.Fatalf("SUBACK id %d codes %v, want id 7 codes [%d]", ack.PacketID, ack.ReasonCodes, tt.qos)
				}
				b.wantRoute(t, "d1", "d1", routeState{routes: 1, total: base + 1})
				if !b.Reachable("d1") {
					t.Fatal("routed device not reachable")
				}
				waitFor(t, "d1 said connected", func() bool { return cmd.connects("d1") == 1 })

				b.command(t, "d1", "c1")
				pk := d.commandPublish("d1")
				if id := commandID(t, pk); id != "c1" || pk.FixedHeader.Dup {
					t.Fatalf("publish of command %q (dup %v), want c1", id, pk.FixedHeader.Dup)
				}
				cmd.noConfirmation(t)
				d.puback(pk.PacketID)
				cmd.confirmed(t, "c1")
				d.ping()
				waitFor(t, "the route's writer to end", func() bool { n, _ := routeWriters(); return n == 0 })
				b.wantRoute(t, "d1", "d1", routeState{routes: 1, total: base + 1})
				if _, _, writers := mqttGoroutines(); writers != 0 {
					t.Fatalf("%d mochi writers run", writers)
				}
				if n := b.queued(t, "d1"); n != 0 {
					t.Fatalf("session holds %d messages after the PUBACK", n)
				}

				d.disconnect()
				waitFor(t, "the session to end", func() bool { _, ok := b.server.Clients.Get("d1"); return !ok })
				if b.Reachable("d1") {
					t.Fatal("device reachable after its clean disconnect")
				}
				if n := b.subscriptions(); n != base {
					t.Fatalf("%d subscriptions after the disconnect, want %d", n, base)
				}
			})
		}
	})
}

// An UNSUBSCRIBE of a routed filter is answered as for a subscription
// (MQTT 5: success, not "no subscription existed"), ends the route, and
// no command comes after it. The client may take the route again.
func TestBrokerCommandRouteUnsubscribe(t *testing.T) {
	reviewOnPaths(t, func(t *testing.T) {
		for _, version := range []byte{4, 5} {
			t.Run(fmt.Sprint("mqtt ", version), func(t *testing.T) {
				b, cmd := startRouteBroker(t, nil)
				base := b.subscriptions()
				d := routed(t, b, version, "d1", true)
				ack := d.unsuback(9, commandsOfD1)
				if want := map[byte][]byte{4: nil, 5: {packets.CodeSuccess.Code}}[version]; !bytes.Equal(ack.ReasonCodes, want) {
					t.Fatalf("UNSUBACK codes %v, want %v", ack.ReasonCodes, want)
				}
				b.wantRoute(t, "d1", "d1", routeState{total: base})
				if b.Reachable("d1") {
					t.Fatal("device reachable after it unsubscribed")
				}

				b.command(t, "d1", "c1")
				if n := b.queued(t, "d1"); n != 0 {
					t.Fatalf("session holds %d messages", n)
				}
				d.ping() // no publish first
				cmd.noConfirmation(t)

				d.wantSuback([]byte{1}, 10, commandsOfD1)
				b.wantRoute(t, "d1", "d1", routeState{routes: 1, total: base + 1})
				b.command(t, "d1", "c2")
				pk := d.commandPublish("d1")
				if id := commandID(t, pk); id != "c2" {
					t.Fatalf("got command %q, want c2", id)
				}
			})
		}
	})
}

// Another SUBSCRIBE that names a routed filter turns the route into a
// mochi subscription: the SUBACK grants every filter, the subscriptions
// are counted once, and a command comes once. A wildcard of the client's
// own that matches the commands topic keeps the route, and the command
// still comes once.
func TestBrokerCommandRouteDemoted(t *testing.T) {
	reviewOnPaths(t, func(t *testing.T) {
		for _, version := range []byte{4, 5} {
			t.Run(fmt.Sprint("mqtt ", version), func(t *testing.T) {
				b, cmd := startRouteBroker(t, nil)
				base := b.subscriptions()
				d := routed(t, b, version, "d1", true)
				d.wantSuback([]byte{1, 1}, 3, commandsOfD1, "plant/#")
				b.wantRoute(t, "d1", "d1", routeState{held: true, subscribers: 1, writing: true, total: base + 2})
				if !b.Reachable("d1") {
					t.Fatal("device not reachable")
				}
				onceDelivered(t, b, d, cmd, "c1")

				ack := d.unsuback(4, commandsOfD1)
				if version == 5 && !bytes.Equal(ack.ReasonCodes, []byte{0}) {
					t.Fatalf("UNSUBACK codes %v", ack.ReasonCodes)
				}
				b.wantRoute(t, "d1", "d1", routeState{writing: true, total: base + 1})
				if b.Reachable("d1") {
					t.Fatal("device reachable after it unsubscribed")
				}
			})
			t.Run(fmt.Sprint("wildcard, mqtt ", version), func(t *testing.T) {
				b, cmd := startRouteBroker(t, nil)
				base := b.subscriptions()
				d := routed(t, b, version, "d1", true)
				d.wantSuback([]byte{1}, 3, "devices/d1/#")
				b.wantRoute(t, "d1", "d1", routeState{routes: 1, subscribers: 1, writing: true, total: base + 2})
				onceDelivered(t, b, d, cmd, "c1")
				// The route gave way to a mochi subscription, counted already.
				b.wantRoute(t, "d1", "d1", routeState{held: true, subscribers: 1, writing: true, total: base + 2})
				onceDelivered(t, b, d, cmd, "c2")
			})
		}
	})
}

// Two clients with a route of the same device each get its commands;
// one unsubscribing leaves the other's route.
func TestBrokerCommandRouteTwoClients(t *testing.T) {
	b, cmd := startRouteBroker(t, nil)
	base := b.subscriptions()
	one, two := routed(t, b, 4, "one", true), routed(t, b, 5, "two", true)
	b.wantRoute(t, "two", "d1", routeState{routes: 1, total: base + 2})
	b.command(t, "d1", "c1")
	for _, d := range []*rawMQTT{one, two} {
		pk := d.commandPublish("d1")
		if commandID(t, pk) != "c1" {
			t.Fatalf("got %q, want c1", commandID(t, pk))
		}
		d.puback(pk.PacketID)
	}
	cmd.confirmed(t, "c1", "c1")

	one.unsuback(2, commandsOfD1)
	b.wantRoute(t, "one", "d1", routeState{total: base + 1})
	b.wantRoute(t, "two", "d1", routeState{routes: 1, total: base + 1})
	if !b.Reachable("d1") {
		t.Fatal("device not reachable through the other client")
	}
	b.command(t, "d1", "c2")
	if commandID(t, two.commandPublish("d1")) != "c2" {
		t.Fatal("the other client did not get c2")
	}
	one.ping() // not delivered to the client that unsubscribed
}

// A client has one route: without credentials, its SUBSCRIBE of a second
// device's commands is a mochi subscription, and each device's commands
// come once.
func TestBrokerCommandRouteSecondDevice(t *testing.T) {
	b, cmd := startRouteBroker(t, nil)
	base := b.subscriptions()
	d := routed(t, b, 4, "d1", true)
	d.wantSuback([]byte{1}, 2, "devices/d2/commands")
	b.wantRoute(t, "d1", "d1", routeState{routes: 1, subscribers: 0, writing: true, total: base + 2})
	b.wantRoute(t, "d1", "d2", routeState{routes: 1, held: true, subscribers: 1, writing: true, total: base + 2})
	b.command(t, "d2", "c1")
	b.command(t, "d1", "c2")
	got := map[string]int{}
	for range 2 {
		pk := d.expect(packets.Publish)
		got[pk.TopicName+" "+commandID(t, pk)]++
		d.puback(pk.PacketID)
	}
	if want := map[string]int{"devices/d2/commands c1": 1, commandsOfD1 + " c2": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	cmd.confirmed(t, "c1", "c2")
	d.ping()
}

// A session taken over and carried on keeps its route: the command its
// old connection did not acknowledge is sent again to the new one, and
// later commands reach the new one. A clean start drops the route and
// the commands in flight, until the client subscribes again.
func TestBrokerCommandRouteTakeover(t *testing.T) {
	reviewOnPaths(t, func(t *testing.T) {
		for _, version := range []byte{4, 5} {
			t.Run(fmt.Sprint("resumed, mqtt ", version), func(t *testing.T) {
				b, cmd := startRouteBroker(t, nil)
				base := b.subscriptions()
				old := routed(t, b, version, "d1", false)
				b.command(t, "d1", "c1")
				first := old.commandPublish("d1") // left unacknowledged

				next, ack := dialRaw(t, b.Addr().String(), routeConnect(version, "d1", false))
				if !ack.SessionPresent || ack.ReasonCode != 0 {
					t.Fatalf("CONNACK session present %v reason %#x", ack.SessionPresent, ack.ReasonCode)
				}
				again := next.commandPublish("d1")
				if commandID(t, again) != "c1" || again.PacketID != first.PacketID || !again.FixedHeader.Dup {
					t.Fatalf("resent %q id %d dup %v, want c1 id %d dup", commandID(t, again), again.PacketID,
						again.FixedHeader.Dup, first.PacketID)
				}
				for _, pk := range old.closed() {
					if pk.FixedHeader.Type != packets.Disconnect {
						t.Fatalf("old connection got %s", packets.PacketNames[pk.FixedHeader.Type])
					}
				}
				waitFor(t, "the old connection's session to end", func() bool { return b.liveSessions("d1") == 1 })
				b.wantRoute(t, "d1", "d1", routeState{routes: 1, total: base + 1})
				if !b.Reachable("d1") {
					t.Fatal("device not reachable")
				}

				b.command(t, "d1", "c2")
				second := next.commandPublish("d1")
				if commandID(t, second) != "c2" {
					t.Fatalf("got %q, want c2", commandID(t, second))
				}
				next.puback(again.PacketID)
				next.puback(second.PacketID)
				cmd.confirmed(t, "c1", "c2")
				next.ping()

				// A client that subscribes again on every connection keeps
				// its one route.
				next.wantSuback([]byte{1}, 5, commandsOfD1)
				b.wantRoute(t, "d1", "d1", routeState{routes: 1, total: base + 1})
				onceDelivered(t, b, next, cmd, "c3")
			})
			t.Run(fmt.Sprint("clean, mqtt ", version), func(t *testing.T) {
				b, cmd := startRouteBroker(t, nil)
				base := b.subscriptions()
				old := routed(t, b, version, "d1", false)
				b.command(t, "d1", "c1")
				old.commandPublish("d1") // left unacknowledged

				next, ack := dialRaw(t, b.Addr().String(), routeConnect(version, "d1", true))
				if ack.SessionPresent || ack.ReasonCode != 0 {
					t.Fatalf("CONNACK session present %v reason %#x", ack.SessionPresent, ack.ReasonCode)
				}
				next.ping() // nothing sent again
				old.closed()
				waitFor(t, "the old connection's session to end", func() bool { return b.liveSessions("d1") == 1 })
				b.wantRoute(t, "d1", "d1", routeState{total: base})
				if b.Reachable("d1") {
					t.Fatal("device reachable after a clean start")
				}
				b.command(t, "d1", "c2")
				next.ping() // not delivered
				cmd.noConfirmation(t)

				next.wantSuback([]byte{1}, 2, commandsOfD1)
				b.wantRoute(t, "d1", "d1", routeState{routes: 1, total: base + 1})
				onceDelivered(t, b, next, cmd, "c3")
			})
		}
	})
}

// While a persistent session's client is away, its route keeps the
// device reachable and its commands wait in the session; they come when
// the client is back, as later ones do.
func TestBrokerCommandRouteSessionAway(t *testing.T) {
	reviewOnPaths(t, func(t *testing.T) {
		for _, version := range []byte{4, 5} {
			t.Run(fmt.Sprint("mqtt ", version), func(t *testing.T) {
				b, cmd := startRouteBroker(t, nil)
				base := b.subscriptions()
				routed(t, b, version, "d1", false).disconnect()
				waitFor(t, "the connection's end", func() bool { return b.liveSessions("d1") == 0 })
				if !b.Reachable("d1") {
					t.Fatal("the session's device not reachable while its client is away")
				}
				b.command(t, "d1", "c1")
				// The route's writer readies it, writes nothing and ends.
				waitFor(t, "the command to wait in the session", func() bool { return b.queued(t, "d1") == 1 })
				waitFor(t, "the route's writer to end", func() bool { n, _ := routeWriters(); return n == 0 })
				b.wantRoute(t, "d1", "d1", routeState{routes: 1, total: base + 1})

				d, ack := dialRaw(t, b.Addr().String(), routeConnect(version, "d1", false))
				if !ack.SessionPresent {
					t.Fatal("session not present")
				}
				pk := d.commandPublish("d1")
				if commandID(t, pk) != "c1" {
					t.Fatalf("got %q, want c1", commandID(t, pk))
				}
				d.puback(pk.PacketID)
				cmd.confirmed(t, "c1")
				d.ping() // the PUBACK handled: the session holds nothing
				b.wantRoute(t, "d1", "d1", routeState{routes: 1, total: base + 1})
				onceDelivered(t, b, d, cmd, "c2")
			})
		}
	})
}

// A session that ends while its client is away ends its route: when it
// expires, and when it is dropped for the session limit.
func TestBrokerCommandRouteSessionDropped(t *testing.T) {
	t.Run("expired", func(t *testing.T) {
		b, _ := startRouteBroker(t, func(c *BrokerConfig) { c.Limits.SessionExpiry = time.Second })
		base := b.subscriptions()
		routed(t, b, 4, "d1", false).disconnect()
		waitFor(t, "the session to expire", func() bool {
			_, kept := b.server.Clients.Get("d1")
			return !kept && !b.Reachable("d1")
		})
		if n := b.subscriptions(); n != base {
			t.Fatalf("%d subscriptions, want %d", n, base)
		}
	})
	t.Run("session limit", func(t *testing.T) {
		b, _ := startRouteBroker(t, func(c *BrokerConfig) { c.Limits.MaxSessions = 1 })
		base := b.subscriptions()
		routed(t, b, 4, "d1", false).disconnect()
		waitFor(t, "the connection's end", func() bool { return b.liveSessions("d1") == 0 })
		if !b.Reachable("d1") {
			t.Fatal("device not reachable")
		}
		dialRaw(t, b.Addr().String(), routeConnect(4, "other", true))
		if _, kept := b.server.Clients.Get("d1"); kept || b.Reachable("d1") {
			t.Fatalf("session kept %v, reachable %v", kept, b.Reachable("d1"))
		}
		if n := b.subscriptions(); n != base {
			t.Fatalf("%d subscriptions, want %d", n, base)
		}
	})
}

// A route counts against the subscription limit: past it, another filter
// is refused (MQTT 5: 0x97 quota exceeded, MQTT 3.1.1: 0x80), but the
// routed filter subscribed again is not. A client at the limit is
// refused the commands filter, and gets no route.
func TestBrokerCommandRouteSubscriptionLimit(t *testing.T) {
	reviewOnPaths(t, func(t *testing.T) {
		for _, version := range []byte{4, 5} {
			refused := map[byte]byte{4: 0x80, 5: packets.ErrQuotaExceeded.Code}[version]
			t.Run(fmt.Sprint("mqtt ", version), func(t *testing.T) {
				b, _ := startRouteBroker(t, func(c *BrokerConfig) { c.Limits.MaxSubscriptions = 1 })
				base := b.subscriptions()
				d := routed(t, b, version, "d1", true)
				d.wantSuback([]byte{refused}, 2, "plant/a")
				d.wantSuback([]byte{1}, 3, commandsOfD1)
				b.wantRoute(t, "d1", "d1", routeState{routes: 1, total: base + 1})
				d.wantSuback([]byte{1, refused}, 4, commandsOfD1, "plant/a")
				b.wantRoute(t, "d1", "d1", routeState{held: true, subscribers: 1, writing: true, total: base + 1})
			})
			t.Run(fmt.Sprint("at the limit, mqtt ", version), func(t *testing.T) {
				b, _ := startRouteBroker(t, func(c *BrokerConfig) { c.Limits.MaxSubscriptions = 1 })
				base := b.subscriptions()
				d, _ := dialRaw(t, b.Addr().String(), routeConnect(version, "d1", true))
				d.wantSuback([]byte{1}, 1, "plant/a")
				d.wantSuback([]byte{refused}, 2, commandsOfD1)
				b.wantRoute(t, "d1", "d1", routeState{writing: true, total: base + 1})
				if b.Reachable("d1") {
					t.Fatal("device reachable through a refused subscription")
				}
			})
		}
	})
}

// With credentials, a device's client subscribing to another device's
// commands is refused (MQTT 5: 0x87 not authorized, MQTT 3.1.1: 0x80) and
// gets neither a route nor that device's commands; its own commands take
// a route.
func TestBrokerCommandRouteCredentials(t *testing.T) {
	reviewOnPaths(t, func(t *testing.T) {
		for _, version := range []byte{4, 5} {
			t.Run(fmt.Sprint("mqtt ", version), func(t *testing.T) {
				b, cmd := startRouteBroker(t, func(c *BrokerConfig) {
					c.Authenticate = func(u, p string) bool { return p == "secret-"+u }
				})
				base := b.subscriptions()
				c := routeConnect(version, "c1", true)
				c.user, c.pass = "d1", "secret-d1"
				d, ack := dialRaw(t, b.Addr().String(), c)
				if ack.ReasonCode != 0 {
					t.Fatalf("CONNACK %#x", ack.ReasonCode)
				}
				refused := map[byte]byte{4: 0x80, 5: packets.ErrNotAuthorized.Code}[version]
				d.wantSuback([]byte{refused}, 1, "devices/d2/commands")
				session := sessionKey("d1", "c1")
				b.wantRoute(t, session, "d2", routeState{total: base})
				if b.Reachable("d2") {
					t.Fatal("another device reachable")
				}
				b.command(t, "d2", "c1")
				d.ping() // not delivered

				d.wantSuback([]byte{1}, 2, commandsOfD1)
				b.wantRoute(t, session, "d1", routeState{routes: 1, total: base + 1})
				b.command(t, "d1", "c2")
				pk := d.commandPublish("d1")
				d.puback(pk.PacketID)
				cmd.confirmed(t, "c2")
			})
		}
	})
}

// A SUBSCRIBE that a route does not serve is mochi's subscription, as
// before routes: more than one filter, QoS 0, a subscription identifier,
// commands off.
func TestBrokerCommandRouteNotTaken(t *testing.T) {
	tests := []struct {
		name     string
		commands bool
		qos      byte
		props    packets.Properties
		filters  []string
	}{
		{name: "two filters", commands: true, qos: 1, filters: []string{commandsOfD1, "plant/#"}},
		{name: "qos 0", commands: true, qos: 0, filters: []string{commandsOfD1}},
		{name: "subscription identifier", commands: true, qos: 1,
			props: packets.Properties{SubscriptionIdentifier: []int{5}}, filters: []string{commandsOfD1}},
		{name: "commands off", qos: 1, filters: []string{commandsOfD1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startMQTTBroker(t, func(c *BrokerConfig) {
				if tt.commands {
					c.Commands = newRouteCommander()
				}
			})
			base := b.subscriptions()
			d, _ := dialRaw(t, b.Addr().String(), routeConnect(5, "d1", true))
			d.subscribeAt(1, tt.qos, tt.props, tt.filters...)
			ack := d.expect(packets.Suback)
			if want := bytes.Repeat([]byte{tt.qos}, len(tt.filters)); !bytes.Equal(ack.ReasonCodes, want) {
				t.Fatalf("SUBACK codes %v, want %v", ack.ReasonCodes, want)
			}
			b.wantRoute(t, "d1", "d1", routeState{held: true, subscribers: 1, writing: true,
				total: base + int64(len(tt.filters))})
			if !b.Reachable("d1") {
				t.Fatal("device not reachable")
			}
		})
	}
}

// A device's retained publish on its commands topic is refused and
// retains nothing, so that a SUBSCRIBE to the topic still takes a route
// and gets no retained message.
func TestBrokerCommandRouteRetainedPublishRefused(t *testing.T) {
	b, _ := startRouteBroker(t, nil)
	pub, _ := dialRaw(t, b.Addr().String(), routeConnect(4, "publisher", true))
	pub.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
		TopicName: commandsOfD1, PacketID: 3, Payload: []byte(`{"id":"r1","name":"x"}`)})
	pub.expect(packets.Puback)
	if n := len(b.server.Topics.Messages(commandsOfD1)); n != 0 {
		t.Fatalf("%d retained messages on the commands topic", n)
	}
	d := routed(t, b, 4, "d1", true)
	b.wantRoute(t, "d1", "d1", routeState{routes: 1, total: b.subscriptions()})
	d.ping() // no retained message
}

// An MQTT 5 client's Receive Maximum holds a route's publishes: with 1,
// the second command waits in the session until the first is
// acknowledged, then comes.
func TestBrokerCommandRouteReceiveMaximum(t *testing.T) {
	reviewOnPaths(t, func(t *testing.T) {
		b, cmd := startRouteBroker(t, nil)
		d := routedReceiveMaximum1(t, b)
		b.wantRoute(t, "d1", "d1", routeState{routes: 1, total: b.subscriptions()})
		b.command(t, "d1", "c1")
		b.command(t, "d1", "c2")
		first := d.commandPublish("d1")
		if commandID(t, first) != "c1" {
			t.Fatalf("got %q first, want c1", commandID(t, first))
		}
		cl := b.client(t, "d1")
		waitFor(t, "the second command held in the session", func() bool {
			return cl.State.Inflight.Len() == 2 && b.heldFor(cl) == 1
		})
		d.ping() // the second is not sent yet
		cmd.noConfirmation(t)

		d.puback(first.PacketID)
		second := d.commandPublish("d1")
		if commandID(t, second) != "c2" || second.PacketID == first.PacketID {
			t.Fatalf("got %q id %d second, want c2 with another id than %d", commandID(t, second),
				second.PacketID, first.PacketID)
		}
		d.puback(second.PacketID)
		cmd.confirmed(t, "c1", "c2")
		d.ping()
	})
}

// The broker's shutdown ends a route's writer blocked in a write to a
// client that does not read, and a SendCommand waiting meanwhile for the
// client's lock that the write holds (as mochi's deliveries do).
func TestBrokerCommandRouteShutdownWithBlockedWriter(t *testing.T) {
	for _, version := range []byte{4, 5} {
		t.Run(fmt.Sprint("mqtt ", version), func(t *testing.T) {
			b, _ := startRouteBroker(t, func(c *BrokerConfig) {
				c.Limits.MaxQueuedBytes = 1 << 30
				c.Limits.MaxQueuedBytesTotal = 1 << 30
			})
			sent := b.blockRouteWriter(t, routed(t, b, version, "d1", true))
			ctx, cancel := context.WithTimeout(context.Background(), waitGuard)
			defer cancel()
			if err := b.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			waitFor(t, "the commands' sender to end", func() bool { return len(sent) == 1 })
			// Shutdown waited for them; they may still be on their way out.
			waitFor(t, "no route writer left after the shutdown", func() bool { n, _ := routeWriters(); return n == 0 })
		})
	}
}

// A route's commands count in the session's queued limit: past it, a
// command is dropped and counted, as a delivery to a subscriber is.
func TestBrokerCommandRouteQueuedLimit(t *testing.T) {
	b, _ := startRouteBroker(t, func(c *BrokerConfig) { c.Limits.MaxQueued = 2 })
	d := routed(t, b, 4, "d1", true)
	for _, id := range []string{"c1", "c2", "c3"} {
		b.command(t, "d1", id)
	}
	waitFor(t, "two commands in the session and one dropped", func() bool {
		return b.queued(t, "d1") == 2 && b.dropped() == 1
	})
	for _, id := range []string{"c1", "c2"} {
		if got := commandID(t, d.commandPublish("d1")); got != id {
			t.Fatalf("got %q, want %s", got, id)
		}
	}
	d.ping() // not c3
}

// A route that becomes a mochi subscription while a publish waits for the
// client's Receive Maximum hands the publish to mochi, which sends it
// once the client acknowledged the one before: after a SUBSCRIBE naming
// the filter, and after an UNSUBSCRIBE of it (the publish is in flight
// already).
func TestBrokerCommandRouteDemotedWithHeldPublish(t *testing.T) {
	for _, how := range []string{"subscribe", "unsubscribe"} {
		t.Run(how, func(t *testing.T) {
			b, cmd := startRouteBroker(t, nil)
			d := routedReceiveMaximum1(t, b)
			b.command(t, "d1", "c1")
			b.command(t, "d1", "c2") // held
			first := d.commandPublish("d1")
			if how == "subscribe" {
				d.wantSuback([]byte{1, 1}, 2, commandsOfD1, "plant/#")
			} else {
				d.unsuback(2, commandsOfD1)
			}
			d.ping() // nothing more before the PUBACK
			d.puback(first.PacketID)
			second := d.commandPublish("d1")
			if got := commandID(t, second); got != "c2" {
				t.Fatalf("got %q, want c2", got)
			}
			d.puback(second.PacketID)
			cmd.confirmed(t, "c1", "c2")
			d.ping()
		})
	}
}
