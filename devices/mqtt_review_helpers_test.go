package devices

import (
	"bufio"
	"cmp"
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The helpers of mqtt_review_test.go: raw clients with a will, reads
// bounded by a window, a subscriber flooded until it stops reading.

// reviewPingreq is a whole PINGREQ packet.
var reviewPingreq = []byte{packets.Pingreq << 4, 0}

// reviewOnPaths runs fn on the direct read path and on the blocking
// one (mqttBlockingInTests), restoring the blocking flag after each.
func reviewOnPaths(t *testing.T, fn func(t *testing.T)) {
	for _, path := range []struct {
		name     string
		blocking bool
	}{{"direct", false}, {"blocking", true}} {
		t.Run(path.name, func(t *testing.T) {
			was := mqttBlockingInTests
			mqttBlockingInTests = path.blocking
			defer func() { mqttBlockingInTests = was }()
			fn(t)
		})
	}
}

// reviewWill describes the CONNECT of a client with a will on topic.
type reviewWill struct {
	version byte
	id      string
	clean   bool
	topic   string // no will when ""
	payload string // the will's payload; "gone" when ""
	delay   uint32 // the will's delay in seconds (MQTT 5)
	expiry  int    // the session's expiry in seconds (MQTT 5): 60 when 0, none when negative
}

// connect returns the CONNECT packet; an MQTT 5 session outlives its
// connection by a minute unless w says otherwise.
func (w reviewWill) connect() packets.Packet {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: w.version,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: w.id,
			Clean: w.clean, Keepalive: 60}}
	if w.version == 5 && w.expiry >= 0 {
		expiry := uint32(60)
		if w.expiry > 0 {
			expiry = uint32(w.expiry)
		}
		pk.Properties = packets.Properties{SessionExpiryInterval: expiry, SessionExpiryIntervalFlag: true}
	}
	if w.topic != "" {
		payload := cmp.Or(w.payload, "gone")
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload = true, w.topic, []byte(payload)
		pk.Connect.WillProperties = packets.Properties{WillDelayInterval: w.delay}
	}
	return pk
}

// reviewDial connects and sends the CONNECT of w without reading the
// answer.
func reviewDial(t *testing.T, addr string, w reviewWill) *rawMQTT {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	m := &rawMQTT{t: t, conn: conn, r: bufio.NewReader(conn), version: w.version}
	m.send(w.connect())
	return m
}

// reviewConnected is reviewDial that waits for a successful CONNACK.
func reviewConnected(t *testing.T, addr string, w reviewWill) (*rawMQTT, packets.Packet) {
	t.Helper()
	m := reviewDial(t, addr, w)
	ack := m.next()
	if ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != packets.CodeSuccess.Code {
		t.Fatalf("%s: got %s %#x, want a successful CONNACK", w.id, packets.PacketNames[ack.FixedHeader.Type], ack.ReasonCode)
	}
	return m, ack
}

// reviewSubscriber connects a client subscribed to filter.
func reviewSubscriber(t *testing.T, addr, id, filter string) *rawMQTT {
	t.Helper()
	s, _ := dialRaw(t, addr, rawConnect{version: 4, id: id, clean: true})
	s.subscribe(1, filter)
	s.nextOf(packets.Suback)
	return s
}

// reviewWindowConn bounds every read deadline of a connection by end.
type reviewWindowConn struct {
	net.Conn
	end time.Time
}

func (c reviewWindowConn) SetReadDeadline(t time.Time) error {
	if t.IsZero() || t.After(c.end) {
		t = c.end
	}
	return c.Conn.SetReadDeadline(t)
}

// reviewNextPublish returns the next PUBLISH m gets within d, skipping
// other packets; false when none came.
func reviewNextPublish(t *testing.T, m *rawMQTT, d time.Duration) (packets.Packet, bool) {
	t.Helper()
	conn := m.conn
	m.conn = reviewWindowConn{Conn: conn, end: time.Now().Add(d)}
	defer func() { m.conn = conn }()
	for {
		pk, err := m.read()
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			return packets.Packet{}, false
		case err != nil:
			t.Fatalf("read: %v", err)
		case pk.FixedHeader.Type == packets.Publish:
			return pk, true
		}
	}
}

// reviewPublishes counts the PUBLISH packets m gets within d: d is how
// long the test gives the broker to send one it should not.
func reviewPublishes(t *testing.T, m *rawMQTT, d time.Duration) int {
	t.Helper()
	end := time.Now().Add(d)
	n := 0
	for {
		if _, ok := reviewNextPublish(t, m, time.Until(end)); !ok {
			return n
		}
		n++
	}
}

// reviewStuckClient connects client id, which stops reading, with a
// keepalive of 0 (no deadline) and a small socket buffer, and floods it
// through a second client "publisher" until its outbound queue is full
// and its writer is stuck in a write.
func reviewStuckClient(t *testing.T, b *mqttTestBroker, id string) *rawMQTT {
	t.Helper()
	addr := b.Addr().String()
	stuck, _ := dialRaw(t, addr, rawConnect{version: 4, id: id, clean: true})
	if err := stuck.conn.(*net.TCPConn).SetReadBuffer(2048); err != nil {
		t.Fatal(err)
	}
	stuck.subscribe(1, "review/flood")
	stuck.nextOf(packets.Suback)
	p, _ := dialRaw(t, addr, rawConnect{version: 4, id: "publisher", clean: true})
	reviewFlood(t, b, p, "review/flood", 2*mqttWritesPending)
	return stuck
}

// reviewFlood publishes 8 KB messages to topic from p until the
// broker has dropped at least n messages for a subscriber that does not
// read: its outbound queue is full and its writer is stuck in a write.
func reviewFlood(t *testing.T, b *mqttTestBroker, p *rawMQTT, topic string, n float64) {
	t.Helper()
	payload := make([]byte, 8000)
	deadline := time.Now().Add(waitGuard)
	for testutil.ToFloat64(b.m.MQTTDropped) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%v messages dropped, want %v", testutil.ToFloat64(b.m.MQTTDropped), n)
		}
		p.publish(topic, 0, 0, payload, packets.Properties{})
	}
}

// reviewAnyReplaced reports whether the hook marked a connection as replaced
// by a newer one with its client id.
func (b *mqttTestBroker) reviewAnyReplaced() bool {
	found := false
	b.hook.conns.Range(func(_, v any) bool {
		found = v.(*mqttConn).replaced.Load()
		return !found
	})
	return found
}

// reviewListenerConns returns how many connections the listener holds open.
func (b *mqttTestBroker) reviewListenerConns() int {
	b.ln.mu.Lock()
	defer b.ln.mu.Unlock()
	return len(b.ln.conns)
}

// reviewBlockCommits makes the broker's commits wait until the returned
// release is called (at the latest when the test ends, before the
// broker's shutdown).
func reviewBlockCommits(t *testing.T, b *mqttTestBroker) (release func()) {
	block := make(chan struct{})
	var once sync.Once
	release = func() {
		once.Do(func() {
			b.bridge.mu.Lock()
			b.bridge.block = nil
			b.bridge.mu.Unlock()
			close(block)
		})
	}
	t.Cleanup(release)
	b.bridge.mu.Lock()
	b.bridge.block = block
	b.bridge.mu.Unlock()
	return release
}

// reviewBlocked returns how many commits waited for reviewBlockCommits'
// release.
func (b *mqttTestBroker) reviewBlocked() int {
	b.bridge.mu.Lock()
	defer b.bridge.mu.Unlock()
	return b.bridge.blocked
}
