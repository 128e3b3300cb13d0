package devices

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

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

// handConnectWill is an MQTT 5 CONNECT written by hand with a session
// expiry interval (seconds) and a will on topic of the given delay
// (seconds, 0: none).
func handConnectWill(id string, clean bool, expiry, delay uint32, topic, payload string) []byte {
	return handConnectWillFlags(id, clean, false, expiry, delay, topic, payload)
}

// handConnectWillFlags is handConnectWill with a will retained or not.
func handConnectWillFlags(id string, clean, retain bool, expiry, delay uint32, topic, payload string) []byte {
	flags := byte(0x04) // will, QoS 0
	if clean {
		flags |= 0x02
	}
	if retain {
		flags |= 0x20
	}
	body := append(mqttRawString("MQTT"), 5, flags, 0, 60)
	body = append(body, 5, 0x11, byte(expiry>>24), byte(expiry>>16), byte(expiry>>8), byte(expiry))
	body = append(body, mqttRawString(id)...)
	if delay > 0 {
		body = append(body, 5, 0x18, byte(delay>>24), byte(delay>>16), byte(delay>>8), byte(delay))
	} else {
		body = append(body, 0)
	}
	body = append(body, mqttRawString(topic)...)
	return mqttRawPacket(0x10, append(body, mqttRawString(payload)...))
}

// willPending reports whether the will of client id waits for its delay.
func (b *mqttTestBroker) willPending(id string) bool {
	w := b.sessions.wills
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pending[id] != nil
}

// An MQTT 5 will with a delay is published once the delay has passed
// after the client dropped, or disconnected with reason 0x04; not when
// the client disconnects cleanly (reason 0) or a new connection resumes
// its session within the delay, whether the broker saw the old one drop
// or takes it over. The wills that must not come are checked against a
// sentinel's: a will of a 2 s delay dropped after them, which comes a
// second after any of theirs would have.
func TestMQTTDelayedWill(t *testing.T) {
	b := startMQTTBroker(t, nil)
	addr := b.Addr().String()
	watcher := dialWillWatcher(t, addr)
	connect := func(id string, delay uint32) *rawMQTT {
		c := dialHand(t, addr, 5)
		c.write(handConnectWill(id, true, 60, delay, "plant/wills/"+id, "gone "+id))
		c.expect(packets.Connack)
		return c
	}
	resume := func(id string) *rawMQTT {
		c := dialHand(t, addr, 5)
		c.write(handConnectWill(id, false, 60, 0, "plant/wills/none", "resumed"))
		if ack := c.expect(packets.Connack); !ack.SessionPresent {
			t.Fatalf("%s: session not resumed", id)
		}
		return c
	}
	sent := map[string]time.Time{}
	drop := func(id string, c *rawMQTT) {
		sent[id] = time.Now()
		_ = c.conn.Close()
		waitFor(t, id+"'s will to wait for its delay", func() bool { return b.willPending(id) })
	}

	drop("dropped", connect("dropped", 1))
	c := connect("will-disconnect", 1)
	sent["will-disconnect"] = time.Now()
	// DISCONNECT, reason: with will message, and no properties (mochi
	// reads no reason code from a DISCONNECT of remaining length 1).
	c.write([]byte{0xe0, 0x02, 0x04, 0x00})
	c.closed()

	c = connect("clean-disconnect", 1)
	c.write([]byte{0xe0, 0x02, 0x00, 0x00}) // DISCONNECT, reason: normal
	c.closed()
	drop("resumed", connect("resumed", 1))
	resume("resumed")
	waitFor(t, "the resumed session's will to be dropped", func() bool { return !b.willPending("resumed") })
	old := connect("taken-over", 1)
	resume("taken-over")
	old.closed()
	waitFor(t, "the taken-over connection's session to end", func() bool { return b.liveSessions("taken-over") == 1 })
	drop("sentinel", connect("sentinel", 2))

	got := map[string]bool{}
	for !got["sentinel"] {
		pk := watcher.expect(packets.Publish)
		id := pk.TopicName[len("plant/wills/"):]
		if got[id] {
			t.Fatalf("%s's will published twice", id)
		}
		got[id] = true
		at, ok := sent[id]
		if !ok {
			t.Fatalf("%s's will published", id)
		}
		if d := time.Since(at); d < time.Second {
			t.Fatalf("%s's will published %v after the client left, before its delay", id, d)
		}
		if string(pk.Payload) != "gone "+id {
			t.Fatalf("%s's will %q", id, pk.Payload)
		}
	}
	if len(got) != 3 {
		t.Fatalf("wills published: %v, want dropped, will-disconnect and sentinel", fmt.Sprint(got))
	}
}

// A delayed will of a connection whose session a new connection resumed
// is not published, however late the old connection's end comes: here it
// is held up in the hook's OnWill (the retained limits, held by the test)
// until the new connection is established.
func TestMQTTDelayedWillOfResumedSession(t *testing.T) {
	b := startMQTTBroker(t, nil)
	addr := b.Addr().String()
	watcher := dialWillWatcher(t, addr)

	old := dialHand(t, addr, 5)
	old.write(handConnectWillFlags("late", true, true, 60, 1, "plant/wills/late", "gone late"))
	old.expect(packets.Connack)
	release := holdWillSends(t, b)
	next := dialHand(t, addr, 5)
	next.write(handConnectWill("late", false, 60, 0, "plant/wills/none", "resumed"))
	if ack := next.expect(packets.Connack); !ack.SessionPresent {
		t.Fatal("session not resumed")
	}
	old.closed()
	next.write(handPingreq) // answered once the session is set up
	next.expect(packets.Pingresp)
	release()
	waitFor(t, "the old connection's session to end", func() bool { return b.liveSessions("late") == 1 })

	sentinel := dialHand(t, addr, 5)
	sentinel.write(handConnectWill("sentinel", true, 60, 2, "plant/wills/sentinel", "gone sentinel"))
	sentinel.expect(packets.Connack)
	_ = sentinel.conn.Close()
	if pk := watcher.expect(packets.Publish); pk.TopicName != "plant/wills/sentinel" {
		t.Fatalf("will on %s published, want the sentinel's alone", pk.TopicName)
	}
}

// A delayed will whose delay passes just as its client comes back is
// published, and concerns the session that left alone: the new
// connection keeps its own will. Here the will's send is held up in the
// retained limits (held by the test from within the delay) until the new
// connection is established.
func TestMQTTDelayedWillMeetsReconnect(t *testing.T) {
	b := startMQTTBroker(t, nil)
	addr := b.Addr().String()
	watcher := dialWillWatcher(t, addr)

	old := dialHand(t, addr, 5)
	old.write(handConnectWillFlags("back", true, true, 60, 1, "plant/wills/back", "gone back"))
	old.expect(packets.Connack)
	_ = old.conn.Close()
	waitFor(t, "the will to wait for its delay", func() bool { return b.willPending("back") })
	release := holdWillSends(t, b) // within the delay: the will's send waits for it
	waitFor(t, "the will's delay to pass", func() bool { return !b.willPending("back") })

	next := dialHand(t, addr, 5)
	next.write(handConnectWill("back", false, 60, 0, "plant/wills/next", "gone next"))
	if ack := next.expect(packets.Connack); !ack.SessionPresent {
		t.Fatal("session not resumed")
	}
	next.write(handPingreq) // answered once the session is set up
	next.expect(packets.Pingresp)
	release()
	b.sessions.wills.wg.Wait() // the old will's send is done
	if pk := watcher.expect(packets.Publish); pk.TopicName != "plant/wills/back" {
		t.Fatalf("will on %s published, want the old connection's", pk.TopicName)
	}

	_ = next.conn.Close()
	if pk := watcher.expect(packets.Publish); pk.TopicName != "plant/wills/next" || string(pk.Payload) != "gone next" {
		t.Fatalf("will on %s published, want the new connection's", pk.TopicName)
	}
}

// A second CONNECT on a connection is a protocol error: the connection
// ends (an MQTT 5 client is told 0x82) and its will is published once,
// after its delay for a delayed one. A sentinel will of a 3 s delay,
// dropped after them, shows that no will comes twice.
func TestMQTTSecondConnect(t *testing.T) {
	b := startMQTTBroker(t, nil)
	addr := b.Addr().String()
	watcher := dialWillWatcher(t, addr)

	v4 := dialHand(t, addr, 4)
	flags := append(mqttRawString("MQTT"), 4, 0x06, 0, 60) // clean session, will at QoS 0
	v4.write(mqttRawPacket(0x10, bytes.Join([][]byte{flags, mqttRawString("twice-v4"),
		mqttRawString("plant/wills/twice-v4"), mqttRawString("gone twice-v4")}, nil)))
	v4.expect(packets.Connack)
	v4.write(handConnect(4, "twice-v4", true, 60))
	for _, pk := range v4.closed() {
		t.Fatalf("MQTT 3.1.1 client got %s", packets.PacketNames[pk.FixedHeader.Type])
	}

	v5 := dialHand(t, addr, 5)
	v5.write(handConnectWill("twice-v5", true, 60, 1, "plant/wills/twice-v5", "gone twice-v5"))
	v5.expect(packets.Connack)
	v5.write(handConnect(5, "twice-v5", true, 60))
	if got := v5.closed(); len(got) != 1 || got[0].FixedHeader.Type != packets.Disconnect ||
		got[0].ReasonCode != packets.ErrProtocolViolationSecondConnect.Code {
		t.Fatalf("MQTT 5 client got %s, want DISCONNECT 0x82", packetList(got))
	}
	sentinel := dialHand(t, addr, 5)
	sentinel.write(handConnectWill("sentinel", true, 60, 3, "plant/wills/sentinel", "gone sentinel"))
	sentinel.expect(packets.Connack)
	_ = sentinel.conn.Close()

	var got []string
	for len(got) == 0 || got[len(got)-1] != "plant/wills/sentinel" {
		got = append(got, watcher.expect(packets.Publish).TopicName)
	}
	if len(got) != 3 || got[0] != "plant/wills/twice-v4" || got[1] != "plant/wills/twice-v5" {
		t.Fatalf("wills published: %v, want twice-v4's, twice-v5's and the sentinel's", got)
	}
}

// A will topic is a topic name: a CONNECT whose will topic holds a
// wildcard is refused, as it could never be published.
func TestMQTTWillTopicWithWildcardRefused(t *testing.T) {
	b := startMQTTBroker(t, nil)
	for _, topic := range []string{"plant/+/status", "plant/#"} {
		t.Run(topic, func(t *testing.T) {
			v5 := dialHand(t, b.Addr().String(), 5)
			v5.write(handConnectWill("wild", true, 0, 0, topic, "gone"))
			if ack := v5.expect(packets.Connack); ack.ReasonCode != packets.ErrMalformedWillTopic.Code {
				t.Fatalf("MQTT 5 CONNACK reason %#x, want 0x81", ack.ReasonCode)
			}
			v5.closed()

			v4 := dialHand(t, b.Addr().String(), 4)
			flags := append(mqttRawString("MQTT"), 4, 0x06, 0, 60)
			v4.write(mqttRawPacket(0x10, bytes.Join([][]byte{flags, mqttRawString("wild"),
				mqttRawString(topic), mqttRawString("gone")}, nil)))
			// MQTT 3.1.1 has no return code for it: closed unanswered.
			for _, pk := range v4.closed() {
				t.Fatalf("MQTT 3.1.1 client got %s %#x", packets.PacketNames[pk.FixedHeader.Type], pk.ReasonCode)
			}
			if _, ok := b.server.Clients.Get("wild"); ok {
				t.Fatal("the refused client is in the broker's clients")
			}
		})
	}
}

// dialWillWatcher connects an MQTT 3.1.1 client subscribed to
// plant/wills/#, where the tests' wills are published.
func dialWillWatcher(t *testing.T, addr string) *rawMQTT {
	t.Helper()
	watcher := dialHand(t, addr, 4)
	watcher.write(append(handConnect(4, "watcher", true, 60), handSubscribe(4, 1, "plant/wills/#")...))
	watcher.expect(packets.Connack)
	watcher.expect(packets.Suback)
	return watcher
}

// holdWillSends holds the broker's will sends on the lock of the hook's
// retained limits, which each of them takes, until release; the test's
// end releases it when the test did not.
func holdWillSends(t *testing.T, b *mqttTestBroker) (release func()) {
	mu := &b.hook.retained.mu
	mu.Lock()
	var once sync.Once
	release = func() { once.Do(mu.Unlock) }
	t.Cleanup(release)
	return release
}
