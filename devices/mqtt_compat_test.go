package devices

import (
	"fmt"
	"strings"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/telehub/telehub/bridge"
)

// A QoS 1 PUBLISH with MQTT 5 user properties is answered with a plain
// PUBACK: reason code success, none of the sender's properties.
func TestBrokerPubackOfPublishWithUserProperties(t *testing.T) {
	b := startMQTTBroker(t, nil)
	c, _ := dialRaw(t, b.Addr().String(), rawConnect{version: 5, id: "props", clean: true})
	props := packets.Properties{User: []packets.UserProperty{{Key: "fw", Val: "1.2"}}}
	c.publish("devices/d1/telemetry", 1, 7, []byte(`{"temp":1}`), props)
	ack := c.nextOf(packets.Puback)
	if ack.PacketID != 7 || ack.ReasonCode != packets.CodeSuccess.Code || len(ack.Properties.User) != 0 {
		t.Fatalf("PUBACK id %d reason %#x user properties %v", ack.PacketID, ack.ReasonCode, ack.Properties.User)
	}
	b.bridge.nextWrite(t)
}

// A client resuming its session gets its SUBSCRIBE and UNSUBSCRIBE granted
// even when their packet id is one the broker uses for a message it is
// sending the client: the two sides' packet ids are independent.
func TestBrokerResubscribeWithPacketIDInUseByBroker(t *testing.T) {
	for _, version := range []byte{4, 5} {
		t.Run(fmt.Sprint("mqtt ", version), func(t *testing.T) {
			b := startMQTTBroker(t, nil)
			addr := b.Addr().String()
			session := rawConnect{version: version, id: "watcher", clean: false}
			if version == 5 {
				session.props = packets.Properties{SessionExpiryInterval: 600, SessionExpiryIntervalFlag: true}
			}
			sub, _ := dialRaw(t, addr, session)
			sub.subscribe(1, "devices/d1/telemetry")
			if ack := sub.nextOf(packets.Suback); ack.ReasonCodes[0] != 1 {
				t.Fatalf("first SUBACK %v", ack.ReasonCodes)
			}
			_ = sub.conn.Close()
			b.waitConns(t, 0)

			pub := mustDialMQTT(t, addr, nil)
			pub.publish(t, "devices/d1/telemetry", 1, `{"temp":1}`) // queued for the session
			// mochi answers the publisher before it queues the message for
			// the session: wait for the queue, not the PUBACK.
			waitFor(t, "the message queued for the parked session", func() bool {
				cl, ok := b.server.Clients.Get("watcher")
				return ok && cl.State.Inflight.Len() == 1
			})

			sub, ack := dialRaw(t, addr, session)
			if !ack.SessionPresent {
				t.Fatal("session not present")
			}
			queued := sub.nextOf(packets.Publish) // resent; left unacknowledged
			sub.subscribe(queued.PacketID, "devices/d1/telemetry")
			if ack := sub.nextOf(packets.Suback); ack.PacketID != queued.PacketID || ack.ReasonCodes[0] != 1 {
				t.Fatalf("SUBACK id %d codes %v, want id %d granted QoS 1", ack.PacketID, ack.ReasonCodes, queued.PacketID)
			}
			sub.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe}, PacketID: queued.PacketID,
				Filters: packets.Subscriptions{{Filter: "devices/d1/telemetry"}}})
			ack = sub.nextOf(packets.Unsuback)
			if ack.PacketID != queued.PacketID || version == 5 && ack.ReasonCodes[0] != packets.CodeSuccess.Code {
				t.Fatalf("UNSUBACK id %d codes %v", ack.PacketID, ack.ReasonCodes)
			}
		})
	}
}

// A zero-byte retained publish on a device topic clears the topic's
// retained message and is neither a reading nor a rejection.
func TestBrokerEmptyRetainedPublishClears(t *testing.T) {
	b := startMQTTBroker(t, nil)
	c := mustDialMQTT(t, b.Addr().String(), nil)
	for _, topic := range []string{"devices/d1/telemetry", "devices/d1/telemetry/temp"} {
		tok := c.Publish(topic, 1, true, map[bool]string{true: `{"temp":1}`, false: "1"}[topic == "devices/d1/telemetry"])
		if !tok.WaitTimeout(waitGuard) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
		b.bridge.nextWrite(t)
		if n := len(b.server.Topics.Messages(topic)); n != 1 {
			t.Fatalf("%d retained messages on %s, want 1", n, topic)
		}
		tok = c.Publish(topic, 1, true, []byte{})
		if !tok.WaitTimeout(waitGuard) || tok.Error() != nil {
			t.Fatalf("clear: %v", tok.Error())
		}
		if n := len(b.server.Topics.Messages(topic)); n != 0 {
			t.Fatalf("%d retained messages on %s after the clear", n, topic)
		}
	}
	b.bridge.noWrite(t)
	b.bridge.noReject(t)
}

// An MQTT 5 client learns the Maximum Packet Size from the CONNACK, and
// is told why it is disconnected when it sends a packet over it; an MQTT
// 3.1.1 client is disconnected without a word, as that version has it.
func TestBrokerPacketSizeLimit(t *testing.T) {
	b := startMQTTBroker(t, func(c *BrokerConfig) { c.MaxPayload = 1024 })
	limit := 1024 + mqttPacketOverhead
	big := []byte(strings.Repeat("x", limit))

	v5, ack := dialRaw(t, b.Addr().String(), rawConnect{version: 5, id: "big5", clean: true})
	if got := ack.Properties.MaximumPacketSize; got != uint32(limit) {
		t.Fatalf("CONNACK Maximum Packet Size %d, want %d", got, limit)
	}
	v5.publish("devices/d1/telemetry", 0, 0, []byte(`{"temp":1}`), packets.Properties{})
	v5.publish("devices/d1/telemetry", 1, 1, big, packets.Properties{})
	got := v5.closed()
	if n := len(got); n == 0 || got[n-1].FixedHeader.Type != packets.Disconnect || got[n-1].ReasonCode != packets.ErrPacketTooLarge.Code {
		t.Fatalf("MQTT 5 client got %d packets before the close, want DISCONNECT 0x95 last", n)
	}
	b.bridge.nextWrite(t) // the publish before the big one went through

	v4, _ := dialRaw(t, b.Addr().String(), rawConnect{version: 4, id: "big4", clean: true})
	v4.publish("devices/d1/telemetry", 1, 1, big, packets.Properties{})
	for _, pk := range v4.closed() {
		if pk.FixedHeader.Type == packets.Disconnect {
			t.Fatal("MQTT 3.1.1 client got a DISCONNECT")
		}
	}
	b.bridge.noWrite(t)
}

// The framer finds a packet over the limit wherever the reads split the
// stream.
func TestMQTTFramer(t *testing.T) {
	small := mqttRawPacket(0x30, []byte("0123456789")) // 12 bytes
	large := mqttRawPacket(0x30, make([]byte, 200))    // 203 bytes
	stream := append(append(append([]byte{}, small...), small...), large...)
	for split := 1; split <= len(stream); split++ {
		var f mqttFramer
		at, size := -1, 0
		for off := 0; off < len(stream) && at < 0; off += split {
			end := min(off+split, len(stream))
			if cut, n := f.scan(stream[off:end], 100); cut >= 0 {
				at, size = off+cut, n
				if start := 2 * len(small); cut > 0 && off+cut != start || cut == 0 && off < start {
					t.Fatalf("split %d: cut at %d+%d, the packet starts at %d", split, off, cut, start)
				}
			}
		}
		if at < 0 || size != len(large) {
			t.Fatalf("split %d: cut %d size %d, want the packet of %d bytes", split, at, size, len(large))
		}
	}
	var f mqttFramer
	if cut, _ := f.scan(append(small, small...), 100); cut != -1 {
		t.Fatalf("packets within the limit cut at %d", cut)
	}
}

func FuzzMQTTFramer(f *testing.F) {
	f.Add(mqttRawPacket(0x30, []byte("0123456789")), 3, 20)
	f.Add(append(mqttRawPacket(0xc0, nil), mqttRawPacket(0x30, make([]byte, 300))...), 7, 100)
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, 1, 100)
	f.Fuzz(func(t *testing.T, stream []byte, split, limit int) {
		if split < 1 || split > len(stream)+1 || limit < 2 {
			return
		}
		var whole mqttFramer
		wantCut, wantSize := whole.scan(stream, limit)
		var parts mqttFramer
		for off := 0; off < len(stream); off += split {
			cut, size := parts.scan(stream[off:min(off+split, len(stream))], limit)
			if cut < 0 {
				continue
			}
			if size != wantSize || wantCut < off && cut != 0 || wantCut >= off && off+cut != wantCut {
				t.Fatalf("split %d: cut %d+%d size %d, whole stream: cut %d size %d", split, off, cut, size, wantCut, wantSize)
			}
			return
		}
		if wantCut >= 0 {
			t.Fatalf("split %d: no cut, whole stream: cut %d", split, wantCut)
		}
	})
}

// MQTT 5 clients learn from the PUBACK why a payload was refused, and
// still get the error answer; MQTT 3.1.1 clients get PUBACK and answer.
func TestBrokerMQTT5RefusalReasonCodes(t *testing.T) {
	b := startMQTTBroker(t, func(c *BrokerConfig) {
		c.Authenticate = func(u, p string) bool { return p == "secret-"+u }
	})
	addr := b.Addr().String()
	v5, _ := dialRaw(t, addr, rawConnect{version: 5, id: "d1", user: "d1", pass: "secret-d1", clean: true})
	v5.subscribe(1, "devices/d1/errors")
	v5.nextOf(packets.Suback)
	tests := []struct {
		name, topic, payload string
		code                 byte
	}{
		{"bad payload", "devices/d1/telemetry", `{"temp":`, packets.ErrPayloadFormatInvalid.Code},
		{"other device", "devices/d2/telemetry", `{"temp":1}`, packets.ErrNotAuthorized.Code},
		{"bad topic", "devices/d1/other", `1`, packets.ErrTopicNameInvalid.Code},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := uint16(10 + i)
			v5.publish(tt.topic, 1, id, []byte(tt.payload), packets.Properties{})
			var ack, answer packets.Packet
			for ack.PacketID == 0 || answer.TopicName == "" { // the answer may come first
				switch pk := v5.next(); pk.FixedHeader.Type {
				case packets.Puback:
					ack = pk
				case packets.Publish:
					answer = pk
				}
			}
			if ack.PacketID != id || ack.ReasonCode != tt.code || ack.Properties.ReasonString == "" {
				t.Fatalf("PUBACK id %d reason %#x %q, want %#x with a reason string", ack.PacketID, ack.ReasonCode,
					ack.Properties.ReasonString, tt.code)
			}
			if answer.TopicName != "devices/d1/errors" {
				t.Fatalf("answer on %s", answer.TopicName)
			}
			b.bridge.nextReject(t)
		})
	}
	t.Run("rate limited", func(t *testing.T) {
		b.bridge.setErrors(&bridge.Error{Code: bridge.CodeRateLimited, Message: "over the rate"}, nil)
		defer b.bridge.setErrors(nil, nil)
		v5.publish("devices/d1/telemetry", 1, 20, []byte(`{"temp":1}`), packets.Properties{})
		if ack := v5.nextOf(packets.Puback); ack.PacketID != 20 || ack.ReasonCode != packets.ErrQuotaExceeded.Code {
			t.Fatalf("PUBACK reason %#x, want 0x97", ack.ReasonCode)
		}
		b.bridge.nextReject(t)
	})
	t.Run("qos 2", func(t *testing.T) { // mochi would answer a PUBACK
		v5.publish("devices/d1/telemetry", 2, 30, []byte(`{"temp":`), packets.Properties{})
		if rec := v5.nextOf(packets.Pubrec); rec.PacketID != 30 || rec.ReasonCode >= 0x80 {
			t.Fatalf("PUBREC id %d reason %#x", rec.PacketID, rec.ReasonCode)
		}
		b.bridge.nextReject(t)
	})
	t.Run("mqtt 3.1.1", func(t *testing.T) {
		v4, _ := dialRaw(t, addr, rawConnect{version: 4, id: "v4", user: "d1", pass: "secret-d1", clean: true})
		v4.publish("devices/d1/telemetry", 1, 5, []byte(`{"temp":`), packets.Properties{})
		if ack := v4.nextOf(packets.Puback); ack.PacketID != 5 {
			t.Fatalf("PUBACK id %d", ack.PacketID)
		}
		b.bridge.nextReject(t)
	})
}

// With credentials, a device that connects with another device's client
// id gets a session of its own: the other device keeps its connection and
// its presence.
func TestBrokerClientIDOfAnotherDevice(t *testing.T) {
	b := startMQTTBroker(t, func(c *BrokerConfig) {
		c.Authenticate = func(u, p string) bool { return p == "secret-"+u }
	})
	addr := b.Addr().String()
	lost := make(chan struct{})
	victim := mustDialMQTT(t, addr, func(o *paho.ClientOptions) {
		o.SetClientID("dev-a").SetUsername("dev-a").SetPassword("secret-dev-a").SetCleanSession(false).
			SetConnectionLostHandler(func(paho.Client, error) { close(lost) })
	})
	b.live.expect(t, "online dev-a 1 connect")
	victim.publish(t, "devices/dev-a/telemetry", 1, `{"temp":1}`)
	b.bridge.nextWrite(t)

	intruder := mustDialMQTT(t, addr, func(o *paho.ClientOptions) {
		o.SetClientID("dev-a").SetUsername("dev-b").SetPassword("secret-dev-b").SetCleanSession(false)
	})
	b.live.expect(t, "online dev-b 1 connect")
	intruder.publish(t, "devices/dev-b/telemetry", 1, `{"temp":2}`)
	b.bridge.nextWrite(t)

	victim.publish(t, "devices/dev-a/telemetry", 1, `{"temp":3}`)
	if w := b.bridge.nextWrite(t); w.in.Device != "dev-a" {
		t.Fatalf("write of %s", w.in.Device)
	}
	select {
	case <-lost:
		t.Fatal("dev-a lost its connection")
	default:
	}
	b.live.none(t)
	victim.Disconnect(250)
	b.live.expect(t, "offline dev-a 1 disconnect")
}
