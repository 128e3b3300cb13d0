package devices

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// These tests hold the broker's own MQTT sessions (mqtt_session.go and
// the files beside it) to what mochi's attachClient does where they once
// differed: a takeover of a stuck client, the keepalive, a second
// CONNECT, delayed wills on a takeover, will topics, the writer's start.

// A client that stopped reading, with a full outbound queue and its
// writer stuck in a write, is taken over: the takeover must not hold up an
// unrelated client's CONNECT, and the stuck connection is closed.
func TestReviewTakeoverOfStuckClientDoesNotStallOthers(t *testing.T) {
	reviewOnPaths(t, func(t *testing.T) {
		b := startMQTTBroker(t, nil)
		addr := b.Addr().String()
		reviewStuckClient(t, b, "stuck")

		successor := reviewDial(t, addr, reviewWill{version: 4, id: "stuck", clean: true})
		waitFor(t, "the takeover to begin", b.reviewAnyReplaced)
		start := time.Now()
		_, ack := dialRaw(t, addr, rawConnect{version: 4, id: "other", clean: true})
		if took := time.Since(start); took > 3*time.Second || ack.ReasonCode != packets.CodeSuccess.Code {
			t.Fatalf("unrelated CONNACK %#x after %v, want success within 3s", ack.ReasonCode, took)
		}
		if ack := successor.nextOf(packets.Connack); ack.ReasonCode != packets.CodeSuccess.Code {
			t.Fatalf("successor's CONNACK %#x", ack.ReasonCode)
		}
		// The stuck client's buffers hold megabytes it would read through
		// its tiny window for minutes: the listener shows the close.
		waitFor(t, "the stuck connection to close", func() bool { return b.reviewListenerConns() == 3 })
	})
}

// The keepalive counts from the last packet handled: a QoS 1 publish
// whose commit takes longer than one and a half keepalives does not end
// the session, its PUBACK is written, and the PINGREQ sent behind it is
// answered. The PUBACK follows the commit on its own (deferred) or is
// mochi's answer (retained: mochi stores it first).
func TestReviewKeepaliveCountsFromLastPacketHandled(t *testing.T) {
	for _, retain := range []bool{false, true} {
		name := map[bool]string{false: "deferred PUBACK", true: "mochi's PUBACK"}[retain]
		t.Run(name, func(t *testing.T) {
			reviewOnPaths(t, func(t *testing.T) { reviewSlowCommit(t, retain) })
		})
	}
}

func reviewSlowCommit(t *testing.T, retain bool) {
	b := startMQTTBroker(t, nil)
	release := reviewBlockCommits(t, b)
	c, _ := dialRaw(t, b.Addr().String(), rawConnect{version: 4, id: "slow", clean: true, keepalive: 1})
	// More than the 64 bytes a waiter reads first, so that the round reads
	// on after it.
	var buf bytes.Buffer
	buf.Write(c.encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: retain},
		TopicName: "devices/d1/telemetry", PacketID: 1,
		Payload: []byte(`{"temp":21.5,"hum":40,"door":"open","alarm":false,"seq":7,"pad":"xxxxxxxxxxxxxxxxxxxx"}`)}))
	buf.Write(reviewPingreq)
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the commit to start", func() bool { return b.reviewBlocked() == 1 })
	// The sleep is the thing under test: a commit of 2.5 keepalives.
	time.Sleep(2500 * time.Millisecond)
	release()

	// A deferred PUBACK is written once the commit is done, the PINGRESP
	// by the reader: either may come first.
	got := map[byte]bool{}
	for range 2 {
		got[c.next().FixedHeader.Type] = true
	}
	if !got[packets.Puback] || !got[packets.Pingresp] {
		t.Fatalf("got %v, want a PUBACK and a PINGRESP", got)
	}
	reviewPing(t, c)
}

// A packet sent a byte at a time, each byte sooner than the keepalive
// but the whole packet later, ends the connection one and a half
// keepalives after the last whole packet: bytes of an incomplete packet
// do not keep a client alive.
func TestReviewDribbledPacketDoesNotKeepAlive(t *testing.T) {
	reviewOnPaths(t, func(t *testing.T) {
		b := startMQTTBroker(t, nil)
		c, _ := dialRaw(t, b.Addr().String(), rawConnect{version: 4, id: "dribble", clean: true, keepalive: 1})
		start := time.Now()
		if _, err := c.conn.Write([]byte{packets.Publish << 4, 100}); err != nil { // 100 bytes to come
			t.Fatal(err)
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(waitGuard))
		ended := make(chan error, 1)
		go func() {
			_, err := c.r.ReadByte() // the broker sends nothing before it closes
			ended <- err
		}()
		// The ticker is the thing under test: the client's pace, a byte
		// every 300 ms, five times the keepalive for the whole packet.
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case err := <-ended:
				took := time.Since(start)
				if errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("connection still open after %v of dribbling", took)
				}
				if took > 3*time.Second {
					t.Fatalf("connection ended after %v, want within 1.5 keepalives and a guard (3s)", took)
				}
				return
			case <-tick.C:
				_, _ = c.conn.Write([]byte{0}) // fails once the broker closed
			}
		}
	})
}

// A second CONNECT is a protocol violation that ends the connection with
// its will sent exactly once, at its delay; a reconnect within the delay
// leaves the will unsent.
func TestReviewSecondConnectSendsWillOnce(t *testing.T) {
	for _, tc := range []struct {
		name      string
		delay     uint32
		reconnect bool
		want      int
	}{
		{"will at once", 0, false, 1},
		{"delayed will", 1, false, 1},
		{"delayed will, client back", 1, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reviewOnPaths(t, func(t *testing.T) {
				b := startMQTTBroker(t, nil)
				addr := b.Addr().String()
				s := reviewSubscriber(t, addr, "watcher", "review/will")
				w := reviewWill{version: 5, id: "twice", topic: "review/will", delay: tc.delay}
				c, _ := reviewConnected(t, addr, w)
				c.send(w.connect())
				c.closed()
				if tc.reconnect {
					reviewConnected(t, addr, w)
				}
				// Long enough for the will's delay and a copy of it on
				// another timer.
				window := time.Duration(tc.delay)*time.Second + 2*time.Second
				if n := reviewPublishes(t, s, window); n != tc.want {
					t.Fatalf("%d wills within %v, want %d", n, window, tc.want)
				}
			})
		})
	}
}

// A delayed will of a session taken over while connected is dropped when
// the new connection resumes the session and sent at once when it starts
// clean.
func TestReviewDelayedWillOnTakeover(t *testing.T) {
	const delay = 2 * time.Second
	t.Run("resumed", func(t *testing.T) {
		reviewOnPaths(t, func(t *testing.T) {
			b := startMQTTBroker(t, nil)
			addr := b.Addr().String()
			s := reviewSubscriber(t, addr, "watcher", "review/will")
			old, _ := reviewConnected(t, addr, reviewWill{version: 5, id: "w", topic: "review/will", delay: 2})
			_, ack := reviewConnected(t, addr, reviewWill{version: 5, id: "w"})
			if !ack.SessionPresent {
				t.Fatal("session not resumed")
			}
			old.closed()
			if n := reviewPublishes(t, s, delay+1500*time.Millisecond); n != 0 {
				t.Fatalf("%d wills of a resumed session, want none", n)
			}
		})
	})
	t.Run("clean start", func(t *testing.T) {
		reviewOnPaths(t, func(t *testing.T) {
			b := startMQTTBroker(t, nil)
			addr := b.Addr().String()
			s := reviewSubscriber(t, addr, "watcher", "review/will")
			old, _ := reviewConnected(t, addr, reviewWill{version: 5, id: "w", topic: "review/will", delay: 2})
			reviewConnected(t, addr, reviewWill{version: 5, id: "w", clean: true})
			start := time.Now()
			if _, ok := reviewNextPublish(t, s, delay/2); !ok {
				t.Fatalf("no will within %v of a clean takeover", delay/2)
			}
			t.Logf("will %v after the takeover's CONNACK", time.Since(start))
			old.closed()
			if n := reviewPublishes(t, s, delay); n != 0 {
				t.Fatalf("%d more wills, want the one", n)
			}
		})
	})
}

// An MQTT 5 will waits for its delay or for the end of its session,
// whichever comes first, and is then handled as any will: a session that
// ends with its connection (no session expiry) sends it at once, and one
// that expires before the delay sends it when it expires.
func TestReviewDelayedWillOfSessionEndingFirst(t *testing.T) {
	for _, tt := range []struct {
		name   string
		expiry int
	}{{"session ends with its connection", -1}, {"session expires within a second", 1}} {
		t.Run(tt.name, func(t *testing.T) {
			b := startMQTTBroker(t, nil)
			c, _ := reviewConnected(t, b.Addr().String(), reviewWill{version: 5, id: "d1",
				topic: "devices/d1/status", payload: "offline", delay: 3600, expiry: tt.expiry})
			c.publish("devices/d1/status", 0, 0, []byte("online"), packets.Properties{})
			b.live.expect(t, "online d1 1 message")
			_ = c.conn.Close()
			b.live.expect(t, "offline d1 1 will")
			b.waitConns(t, 0)
			b.live.none(t)
		})
	}
}

// A takeover that stops the old client while its reader is inside a
// packet (here a reading waiting on the store) ends the old session with
// the takeover as its cause: the reader finds the client stopped before
// its next packet, and the will still goes, as after any takeover. Only
// the client's own DISCONNECT drops it.
func TestReviewWillOfClientStoppedBetweenPackets(t *testing.T) {
	reviewOnPaths(t, func(t *testing.T) {
		b := startMQTTBroker(t, nil)
		addr := b.Addr().String()
		s := reviewSubscriber(t, addr, "watcher", "review/will")
		old, _ := reviewConnected(t, addr, reviewWill{version: 5, id: "d1", topic: "review/will"})
		release := reviewBlockCommits(t, b)
		var buf bytes.Buffer
		buf.Write(old.encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish},
			TopicName: "devices/d1/telemetry", Payload: []byte(`{"temp":21.5}`)}))
		buf.Write(reviewPingreq) // the next packet, read after the stop
		old.write(buf.Bytes())
		waitFor(t, "the reading to wait on the store", func() bool { return b.reviewBlocked() == 1 })

		reviewConnected(t, addr, reviewWill{version: 5, id: "d1", clean: true})
		release()
		if _, ok := reviewNextPublish(t, s, waitGuard); !ok {
			t.Fatalf("no will within %v of a takeover during a packet", waitGuard)
		}
	})
}

// A will topic is a topic name: a CONNECT whose will topic holds a
// wildcard is refused, with a CONNACK of code 0x81 in MQTT 5 and
// unanswered in MQTT 3.1.1, which has no code for it; its connection is
// closed.
func TestReviewWillTopicWithWildcardRefused(t *testing.T) {
	reviewOnPaths(t, func(t *testing.T) {
		b := startMQTTBroker(t, nil)
		for _, version := range []byte{5, 4} {
			for _, topic := range []string{"review/+/will", "review/#"} {
				c := reviewDial(t, b.Addr().String(), reviewWill{version: version, id: "wild", clean: true, topic: topic})
				got := c.closed()
				if version == 5 && (len(got) != 1 || got[0].FixedHeader.Type != packets.Connack ||
					got[0].ReasonCode != packets.ErrMalformedWillTopic.Code) {
					t.Fatalf("MQTT 5, will topic %q: got %s, want CONNACK 0x81", topic, packetList(got))
				}
				if version == 4 && len(got) != 0 {
					t.Fatalf("MQTT 3.1.1, will topic %q: got %s, want nothing", topic, packetList(got))
				}
			}
		}
	})
}

// A subscriber's writer runs once it has something to deliver: a
// retained message on SUBSCRIBE, later publishes, the messages of a
// resumed session; and PINGRESP, written past the writer, keeps coming
// after deliveries.
func TestReviewWriterStartsOnDelivery(t *testing.T) {
	reviewOnPaths(t, func(t *testing.T) {
		b := startMQTTBroker(t, nil)
		addr := b.Addr().String()
		p, _ := dialRaw(t, addr, rawConnect{version: 4, id: "publisher", clean: true})
		p.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
			TopicName: "review/r", PacketID: 1, Payload: []byte("kept")})
		p.nextOf(packets.Puback)
		// mochi forwards a publish after its PUBACK: the PINGRESP that
		// follows says it is done, so the reader cannot get "kept" live.
		reviewPing(t, p)

		s, _ := reviewConnected(t, addr, reviewWill{version: 5, id: "reader"})
		s.subscribe(1, "review/r")
		reviewExpectPublish(t, s, "kept")
		for _, payload := range []string{"one", "two"} {
			p.publish("review/r", 0, 0, []byte(payload), packets.Properties{})
			reviewExpectPublish(t, s, payload)
			reviewPing(t, s)
		}

		s.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
		s.closed()
		s, ack := reviewConnected(t, addr, reviewWill{version: 5, id: "reader"})
		if !ack.SessionPresent {
			t.Fatal("session not resumed")
		}
		reviewPing(t, s)
		p.publish("review/r", 0, 0, []byte("three"), packets.Properties{})
		reviewExpectPublish(t, s, "three")
		reviewPing(t, s)
	})
}

// reviewExpectPublish reads until a PUBLISH of payload, failing on another
// one.
func reviewExpectPublish(t *testing.T, m *rawMQTT, payload string) {
	t.Helper()
	pk := m.nextOf(packets.Publish)
	if string(pk.Payload) != payload {
		t.Fatalf("got %q, want %q", pk.Payload, payload)
	}
	if pk.FixedHeader.Qos > 0 {
		m.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
	}
}

// reviewPing sends a PINGREQ and expects its PINGRESP next.
func reviewPing(t *testing.T, m *rawMQTT) {
	t.Helper()
	if _, err := m.conn.Write(reviewPingreq); err != nil {
		t.Fatal(err)
	}
	pk, err := m.read()
	if err != nil || pk.FixedHeader.Type != packets.Pingresp {
		t.Fatalf("got %s (%v), want PINGRESP", packets.PacketNames[pk.FixedHeader.Type], err)
	}
}
