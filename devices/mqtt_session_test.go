package devices

import (
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// The tests of this file hold the sessions the broker runs itself
// (mqtt_session.go, mqtt_will.go) to MQTT: a session taken over by a new
// connection, wills and delayed wills. They run on both read paths
// (TestMQTTOnBlockingReads).

// liveSessions counts the connections of client id whose session has
// not ended yet.
func (b *mqttTestBroker) liveSessions(id string) int {
	n := 0
	b.sessions.live.Range(func(_, v any) bool {
		if v.(*mqttSession).cl.ID == id {
			n++
		}
		return true
	})
	return n
}

// A new connection with the client id of a connected client takes its
// session over: the old connection is closed, a session kept (clean
// session off on both) keeps its subscription for the new connection,
// and the old connection's end, whenever it comes, leaves the new client
// in the broker's clients.
func TestMQTTSessionTakeover(t *testing.T) {
	tests := []struct {
		name               string
		oldClean, newClean bool
		present            bool
	}{
		{"session kept", false, false, true},
		{"clean sessions", true, true, false},
		{"old clean, new kept", true, false, false},
		{"old kept, new clean", false, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startMQTTBroker(t, nil)
			addr := b.Addr().String()
			old := dialHand(t, addr, 4)
			old.write(append(handConnect(4, "keeper", tt.oldClean, 60), handSubscribe(4, 1, "plant/#")...))
			old.expect(packets.Connack)
			old.expect(packets.Suback)

			next := dialHand(t, addr, 4)
			next.write(handConnect(4, "keeper", tt.newClean, 60))
			if ack := next.expect(packets.Connack); ack.SessionPresent != tt.present || ack.ReasonCode != 0 {
				t.Fatalf("CONNACK session present %v reason %#x, want %v", ack.SessionPresent, ack.ReasonCode, tt.present)
			}
			for _, pk := range old.closed() { // mochi tells even an MQTT 3.1.1 client
				if pk.FixedHeader.Type != packets.Disconnect {
					t.Fatalf("old connection got %s", packets.PacketNames[pk.FixedHeader.Type])
				}
			}
			waitFor(t, "the old connection's session to end", func() bool { return b.liveSessions("keeper") == 1 })
			cl, ok := b.server.Clients.Get("keeper")
			if !ok || cl.Closed() {
				t.Fatalf("the new client is not in the broker's clients (found %v)", ok)
			}
			if n := cl.State.Subscriptions.Len(); n != map[bool]int{true: 1, false: 0}[tt.present] {
				t.Fatalf("the new client holds %d subscriptions", n)
			}
			if !tt.present {
				next.write(handSubscribe(4, 1, "plant/#"))
				next.expect(packets.Suback)
			}

			pub := dialHand(t, addr, 4)
			pub.write(append(handConnect(4, "publisher", true, 60),
				handPublish(4, 1, "plant/line-1", 1, []byte("after"))...))
			pub.expect(packets.Connack)
			pub.expect(packets.Puback)
			if pk := next.expect(packets.Publish); pk.TopicName != "plant/line-1" || string(pk.Payload) != "after" {
				t.Fatalf("got %s %q", pk.TopicName, pk.Payload)
			}
			next.write(handPingreq) // still connected, and the only one
			next.expect(packets.Pingresp)
			if subs := b.server.Topics.Subscribers("plant/line-1"); len(subs.Subscriptions) != 1 {
				t.Fatalf("%d subscribers of plant/line-1, want the new client alone", len(subs.Subscriptions))
			}
		})
	}
}
