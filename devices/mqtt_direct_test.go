package devices

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// The tests of this file hold the direct reader (mqtt_direct.go) to what
// mochi's own read loop does: packets framed by mqttPacketSize wherever
// the client's writes split them, each handed to mochi once. Every test
// that starts a broker also runs on the blocking read path
// (TestMQTTOnBlockingReads), but for the goroutine count, which is the
// direct reader's alone.

func TestMQTTPacketSize(t *testing.T) {
	tests := []struct {
		name         string
		b            []byte
		size, header int
		err          error
	}{
		{"empty", nil, 0, 0, nil},
		{"type byte only", []byte{0x30}, 0, 0, nil},
		{"zero-length body", []byte{0xc0, 0x00}, 2, 2, nil},
		{"zero-length body, more after", []byte{0xe0, 0x00, 0xc0, 0x00}, 2, 2, nil},
		{"one length byte", []byte{0x30, 0x05, 'a', 'b'}, 7, 2, nil},
		{"one length byte, largest", []byte{0x30, 0x7f}, 1 + 1 + 127, 2, nil},
		{"two length bytes", []byte{0x30, 0x80, 0x01}, 1 + 2 + 128, 3, nil},
		{"two length bytes, first missing", []byte{0x30, 0xc1}, 0, 0, nil},
		{"three length bytes", []byte{0x30, 0xff, 0xff, 0x7f}, 1 + 3 + 2097151, 4, nil},
		{"three length bytes, last missing", []byte{0x30, 0xff, 0xff}, 0, 0, nil},
		{"four length bytes", []byte{0x30, 0xff, 0xff, 0xff, 0x7f}, 1 + 4 + 268435455, 5, nil},
		{"four length bytes, smallest", []byte{0x30, 0x80, 0x80, 0x80, 0x01}, 1 + 4 + 2097152, 5, nil},
		{"four length bytes, last missing", []byte{0x30, 0x80, 0x80, 0x80}, 0, 0, nil},
		{"overlong zero", []byte{0x30, 0x80, 0x80, 0x80, 0x00}, 5, 5, nil},
		{"fifth length byte", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f}, 0, 0, packets.ErrMalformedVariableByteInteger},
		{"fifth length byte zero", []byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x00}, 0, 0, packets.ErrMalformedVariableByteInteger},
		{"fourth continues, fifth not there", []byte{0x30, 0x80, 0x80, 0x80, 0x80}, 0, 0, packets.ErrMalformedVariableByteInteger},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size, header, err := mqttPacketSize(tt.b)
			if size != tt.size || header != tt.header || !errors.Is(err, tt.err) {
				t.Fatalf("mqttPacketSize(% x) = %d, %d, %v; want %d, %d, %v", tt.b, size, header, err, tt.size, tt.header, tt.err)
			}
		})
	}
}

// FuzzMQTTPacketSize holds mqttPacketSize to mochi's decoding of the same
// bytes (packets.DecodeLength, which the blocking path reads with): a
// whole header has mochi's length and length bytes, an incomplete one is
// one that mochi cannot finish either, and a malformed one is one that
// mochi refuses or reads a fifth length byte of.
func FuzzMQTTPacketSize(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0xc0, 0x00})
	f.Add(mqttRawPacket(0x30, []byte("0123456789")))
	f.Add([]byte{0x30, 0x80, 0x01})
	f.Add([]byte{0x30, 0xff, 0xff, 0x7f})
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0x7f})
	f.Add([]byte{0x30, 0xff, 0xff, 0xff})
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		size, header, err := mqttPacketSize(b)
		if len(b) == 0 {
			if size != 0 || header != 0 || err != nil {
				t.Fatalf("empty: %d, %d, %v", size, header, err)
			}
			return
		}
		length, bu, merr := packets.DecodeLength(bytes.NewReader(b[1:]))
		switch {
		case err != nil:
			if !errors.Is(err, packets.ErrMalformedVariableByteInteger) || size != 0 || header != 0 {
				t.Fatalf("% x: %d, %d, %v", b, size, header, err)
			}
			if merr == nil && bu <= 4 {
				t.Fatalf("% x: malformed, but mochi reads length %d of %d bytes", b, length, bu)
			}
		case header == 0:
			if size != 0 || !errors.Is(merr, io.EOF) || len(b) > 4 {
				t.Fatalf("% x: incomplete (size %d), mochi: length %d of %d bytes, %v", b, size, length, bu, merr)
			}
		default:
			if merr != nil || header != 1+bu || size != header+length {
				t.Fatalf("% x: size %d header %d, mochi: length %d of %d bytes, %v", b, size, header, length, bu, merr)
			}
		}
	})
}

// handConnect is a CONNECT written by hand: MQTT version (4: 3.1.1, or 5,
// then without properties), client id, clean session and keepalive.
func handConnect(version byte, id string, clean bool, keepalive uint16) []byte {
	var flags byte
	if clean {
		flags = 0x02
	}
	body := append(mqttRawString("MQTT"), version, flags, byte(keepalive>>8), byte(keepalive))
	if version == 5 {
		body = append(body, 0) // no properties
	}
	return mqttRawPacket(0x10, append(body, mqttRawString(id)...))
}

// handPublish is a PUBLISH written by hand; qos 1 carries packet id id.
func handPublish(version, qos byte, topic string, id uint16, payload []byte) []byte {
	body := mqttRawString(topic)
	if qos > 0 {
		body = append(body, byte(id>>8), byte(id))
	}
	if version == 5 {
		body = append(body, 0) // no properties
	}
	return mqttRawPacket(0x30|qos<<1, append(body, payload...))
}

// handSubscribe is a SUBSCRIBE of filter at QoS 1, written by hand.
func handSubscribe(version byte, id uint16, filter string) []byte {
	body := []byte{byte(id >> 8), byte(id)}
	if version == 5 {
		body = append(body, 0) // no properties
	}
	body = append(append(body, mqttRawString(filter)...), 1)
	return mqttRawPacket(0x82, body)
}

var (
	handPingreq    = []byte{0xc0, 0x00}
	handDisconnect = []byte{0xe0, 0x00}
)

// dialHand connects a client that writes bytes written by hand and reads
// the broker's packets as an MQTT client of version does; it sends
// nothing yet.
func dialHand(t testing.TB, addr string, version byte) *rawMQTT {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &rawMQTT{t: t, conn: conn, r: bufio.NewReader(conn), version: version}
}

// write writes b in one write.
func (m *rawMQTT) write(b []byte) {
	m.t.Helper()
	if _, err := m.conn.Write(b); err != nil {
		m.t.Fatalf("write: %v", err)
	}
}

// writeBytewise writes b one byte per write.
func (m *rawMQTT) writeBytewise(b []byte) {
	m.t.Helper()
	for i := range b {
		if _, err := m.conn.Write(b[i : i+1]); err != nil {
			m.t.Fatalf("write byte %d of %d: %v", i, len(b), err)
		}
	}
}

// expect reads the broker's next packet, which must be of type typ.
func (m *rawMQTT) expect(typ byte) packets.Packet {
	m.t.Helper()
	pk := m.next()
	if pk.FixedHeader.Type != typ {
		m.t.Fatalf("got %s, want %s", packets.PacketNames[pk.FixedHeader.Type], packets.PacketNames[typ])
	}
	return pk
}

// A CONNECT and QoS 1 publishes written with it, before the CONNACK, are
// all read: the readings reach the store, the CONNACK comes first and
// each PUBACK only after its commit.
func TestMQTTPacketsWithTheConnect(t *testing.T) {
	b := startMQTTBroker(t, nil)
	b.bridge.setHold()
	c := dialHand(t, b.Addr().String(), 4)
	c.write(bytes.Join([][]byte{
		handConnect(4, "with-connect", true, 60),
		handPublish(4, 1, "devices/d1/telemetry", 7, []byte(`{"temp":1,"seq":1}`)),
		handPublish(4, 1, "devices/d1/telemetry", 8, []byte(`{"temp":2,"seq":2}`)),
	}, nil))
	for seq := uint64(1); seq <= 2; seq++ {
		if w := b.bridge.nextWrite(t); w.in.Device != "d1" || w.p.Seq != seq {
			t.Fatalf("reading %+v %+v, want seq %d of d1", w.in, w.p, seq)
		}
	}
	if ack := c.expect(packets.Connack); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %#x", ack.ReasonCode)
	}
	c.quiet() // no PUBACK before the commits
	b.bridge.release()
	if got := c.pubacks(2); got[0] != 7 || got[1] != 8 {
		t.Fatalf("PUBACKs %v, want [7 8]", got)
	}
}

// A session written one byte per write is read packet by packet, in
// order: every packet is handled once its last byte arrives, a packet
// larger than the read buffers among them.
func TestMQTTPacketsByteByByte(t *testing.T) {
	b := startMQTTBroker(t, nil)
	big := bytes.Repeat([]byte("0123456789"), 500) // over mqttDirectBufferSize
	c := dialHand(t, b.Addr().String(), 4)
	c.writeBytewise(handConnect(4, "bytewise", true, 60))
	c.expect(packets.Connack)
	c.writeBytewise(bytes.Join([][]byte{
		handSubscribe(4, 10, "plant/#"),
		handPublish(4, 1, "devices/d1/telemetry", 1, []byte(`{"temp":1,"seq":1}`)),
		handPublish(4, 0, "devices/d1/telemetry", 0, []byte(`{"temp":2,"seq":2}`)),
		handPublish(4, 0, "plant/big", 0, big),
		handPublish(4, 1, "devices/d1/telemetry", 2, []byte(`{"temp":3,"seq":3}`)),
		handPingreq,
	}, nil))
	if ack := c.expect(packets.Suback); ack.PacketID != 10 || len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] != 1 {
		t.Fatalf("SUBACK id %d codes %v", ack.PacketID, ack.ReasonCodes)
	}
	var acks []uint16
	var forwarded, pongs int
	for len(acks) < 2 || forwarded < 1 || pongs < 1 { // in any order but the PUBACKs'
		switch pk := c.next(); pk.FixedHeader.Type {
		case packets.Puback:
			acks = append(acks, pk.PacketID)
		case packets.Publish:
			if pk.TopicName != "plant/big" || !bytes.Equal(pk.Payload, big) {
				t.Fatalf("forwarded %s of %d bytes", pk.TopicName, len(pk.Payload))
			}
			forwarded++
		case packets.Pingresp:
			pongs++
		default:
			t.Fatalf("got %s", packets.PacketNames[pk.FixedHeader.Type])
		}
	}
	if len(acks) != 2 || acks[0] != 1 || acks[1] != 2 || forwarded != 1 || pongs != 1 {
		t.Fatalf("PUBACKs %v, %d forwarded, %d PINGRESP; want [1 2], 1, 1", acks, forwarded, pongs)
	}
	c.writeBytewise(handDisconnect)
	if got := c.closed(); len(got) != 0 {
		t.Fatalf("after the DISCONNECT: %s", packetList(got))
	}
	for seq := uint64(1); seq <= 3; seq++ {
		if w := b.bridge.nextWrite(t); w.p.Seq != seq {
			t.Fatalf("reading of seq %d, want %d", w.p.Seq, seq)
		}
	}
	b.bridge.noWrite(t)
}

// A packet over the size limit ends the connection as soon as its header
// is read, wherever it arrives: an MQTT 5 client is told why (DISCONNECT
// 0x95), an MQTT 3.1.1 client is not, as TestBrokerPacketSizeLimit has
// it. The publish before it is handled.
func TestMQTTOversizedPacketCloses(t *testing.T) {
	const maxPayload = 1024
	limit := maxPayload + mqttPacketOverhead
	b := startMQTTBroker(t, func(c *BrokerConfig) { c.MaxPayload = maxPayload })
	tests := []struct {
		name string
		// send writes the publishes: after the CONNACK, or, with
		// withConnect, in one write with the CONNECT.
		send        func(c *rawMQTT, b []byte)
		header      bool // the big publish's fixed header alone
		withConnect bool
	}{
		{"after the CONNACK", (*rawMQTT).write, false, false},
		{"with the CONNECT", (*rawMQTT).write, false, true},
		{"its header alone", (*rawMQTT).write, true, false},
		{"byte by byte", (*rawMQTT).writeBytewise, true, false},
	}
	for _, tt := range tests {
		for _, v := range []byte{4, 5} {
			t.Run(fmt.Sprintf("%s/v%d", tt.name, v), func(t *testing.T) {
				c := dialHand(t, b.Addr().String(), v)
				big := handPublish(v, 0, "devices/d1/telemetry", 0, make([]byte, limit))
				if tt.header {
					_, header, _ := mqttPacketSize(big)
					big = big[:header] // written after it, the rest would meet a closed socket
				}
				pubs := append(handPublish(v, 0, "devices/d1/telemetry", 0, []byte(`{"temp":1}`)), big...)
				connect := handConnect(v, "big", true, 60)
				if tt.withConnect {
					tt.send(c, append(connect, pubs...))
				} else {
					c.write(connect)
					c.expect(packets.Connack)
					tt.send(c, pubs)
				}
				got := c.closed()
				if with := len(got) > 0 && got[0].FixedHeader.Type == packets.Connack; with {
					got = got[1:]
				}
				switch {
				case v == 5 && (len(got) != 1 || got[0].FixedHeader.Type != packets.Disconnect ||
					got[0].ReasonCode != packets.ErrPacketTooLarge.Code):
					t.Fatalf("MQTT 5: %s, want DISCONNECT 0x95 then the close", packetList(got))
				case v == 4 && len(got) != 0:
					t.Fatalf("MQTT 3.1.1: %s, want the close alone", packetList(got))
				}
				b.bridge.nextWrite(t) // the small publish
				b.bridge.noWrite(t)
			})
		}
	}
	t.Run("the CONNECT", func(t *testing.T) {
		c := dialHand(t, b.Addr().String(), 4)
		c.write(handConnect(4, string(make([]byte, limit)), true, 60))
		if got := c.closed(); len(got) != 0 {
			t.Fatalf("%s, want the close alone", packetList(got))
		}
	})
}

// packetList names packets for a failure message.
func packetList(pks []packets.Packet) string {
	s := fmt.Sprintf("%d packets", len(pks))
	for _, pk := range pks {
		s += fmt.Sprintf(" %s(%#x)", packets.PacketNames[pk.FixedHeader.Type], pk.ReasonCode)
	}
	return s
}

// A remaining length of five bytes is malformed: the connection is
// closed, whether it is the first packet or a later one and however it is
// written, and the broker serves other clients on.
func TestMQTTMalformedLengthCloses(t *testing.T) {
	b := startMQTTBroker(t, nil)
	tests := []struct {
		name    string
		connect bool
		bytes   []byte
		split   bool
	}{
		{"after the CONNACK", true, []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f}, false},
		{"after the CONNACK, byte by byte", true, []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f}, true},
		{"fifth length byte zero", true, []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x00}, false},
		{"after a publish", true, append(handPublish(4, 0, "devices/d1/telemetry", 0, []byte(`{"temp":1}`)),
			0x30, 0x80, 0x80, 0x80, 0x80, 0x01), false},
		{"PINGREQ of a fifth length byte zero", true, []byte{0xc0, 0x80, 0x80, 0x80, 0x80, 0x00}, false},
		{"in place of the CONNECT", false, []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f}, false},
		{"in place of the CONNECT, byte by byte", false, []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialHand(t, b.Addr().String(), 4)
			if tt.connect {
				c.write(handConnect(4, "malformed", true, 60))
				c.expect(packets.Connack)
			}
			if tt.split {
				c.writeBytewise(tt.bytes)
			} else {
				c.write(tt.bytes)
			}
			if got := c.closed(); len(got) != 0 {
				t.Fatalf("%s, want the close alone", packetList(got))
			}
			if _, ok := b.bridge.tryWrite(); ok != (tt.name == "after a publish") {
				t.Fatalf("reading stored: %v", ok)
			}
			other := dialHand(t, b.Addr().String(), 4)
			other.write(append(handConnect(4, "other", true, 60),
				handPublish(4, 1, "devices/d2/telemetry", 1, []byte(`{"temp":2}`))...))
			other.expect(packets.Connack)
			other.expect(packets.Puback)
			b.bridge.nextWrite(t)
		})
	}
}

// mochi's server info counts each packet a client sends once, and each
// publish once as a message, whichever path reads it; the bytes too.
func TestMQTTPacketCounters(t *testing.T) {
	const n = 20
	b := startMQTTBroker(t, nil)
	info := b.server.Info
	c := dialHand(t, b.Addr().String(), 4)
	c.write(handConnect(4, "counted", true, 60))
	c.expect(packets.Connack)
	packets0, messages0 := atomic.LoadInt64(&info.PacketsReceived), atomic.LoadInt64(&info.MessagesReceived)
	bytes0 := atomic.LoadInt64(&info.BytesReceived)
	var sent []byte
	for i := range n {
		sent = append(sent, handPublish(4, byte(i%2), "devices/d1/telemetry", uint16(i+1), []byte(`{"temp":1}`))...)
	}
	sent = append(sent, handPingreq...)
	c.write(sent[:len(sent)/2+3]) // a packet split between two writes
	c.write(sent[len(sent)/2+3:])
	for acks, pongs := 0, 0; acks < n/2 || pongs < 1; { // the PINGRESP may come first
		switch pk := c.next(); pk.FixedHeader.Type {
		case packets.Puback:
			acks++
		case packets.Pingresp:
			pongs++
		default:
			t.Fatalf("got %s", packets.PacketNames[pk.FixedHeader.Type])
		}
	}
	waitFor(t, "the counters to settle", func() bool {
		return atomic.LoadInt64(&info.PacketsReceived)-packets0 == n+1 &&
			atomic.LoadInt64(&info.MessagesReceived)-messages0 == n &&
			atomic.LoadInt64(&info.BytesReceived)-bytes0 == int64(len(sent))
	})
	for range n {
		b.bridge.nextWrite(t)
	}
}

// mqttClientFrames are the functions in the stack of a goroutine that
// serves one client (not the broker): the direct reader's waiter and
// rounds, a session, the listener's per-connection goroutine, mochi's
// per-client read and write loops, the PUBACK writer.
var mqttClientFrames = []string{
	"devices.(*mqttDirect)",
	"devices.(*mqttSession",
	"devices.(*mqttListener).serveConn",
	"devices.(*mqttAcks)",
	"mochi-mqtt/server/v2.(*Client)",
}

// goroutineStacks returns the stack of every goroutine, one string each.
func goroutineStacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(string(buf[:n]), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// mqttGoroutines counts the goroutines that serve clients, and among them
// the direct reader's waiters and mochi's writers, by their stacks.
func mqttGoroutines() (clients, waiters, writers int) {
	for _, g := range goroutineStacks() {
		for _, f := range mqttClientFrames {
			if strings.Contains(g, f) {
				clients++
				break
			}
		}
		if strings.Contains(g, "devices.(*mqttDirect).wait(") {
			waiters++
		}
		if strings.Contains(g, "mochi-mqtt/server/v2.(*Client).WriteLoop(") {
			writers++
		}
	}
	return clients, waiters, writers
}

// waitMQTTGoroutines waits until the goroutines serving clients are as
// many as said, failing with the counts after waitGuard.
func waitMQTTGoroutines(t *testing.T, what string, clients, waiters, writers int) {
	t.Helper()
	deadline := time.Now().Add(waitGuard)
	for {
		c, wa, wr := mqttGoroutines()
		if c == clients && wa == waiters && wr == writers {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d goroutines serve clients, %d waiters, %d writers; want %d, %d, %d",
				what, c, wa, wr, clients, waiters, writers)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mqttReadsDirectly reports whether plain TCP connections are read by the
// direct reader here (Unix) rather than on a goroutine of their own.
func mqttReadsDirectly(t *testing.T) bool {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return newMQTTDirect(&mqttSession{}, conn) != nil
}

// On the direct path an idle client holds one goroutine, the waiter
// parked in its socket's read, before and after it publishes; mochi's
// writer starts with its first SUBSCRIBE, and a second SUBSCRIBE starts
// no other.
func TestMQTTIdleClientGoroutines(t *testing.T) {
	if mqttBlockingInTests || !mqttReadsDirectly(t) {
		t.Skip("plain TCP connections are read on a goroutine of their own here")
	}
	b := startMQTTBroker(t, nil)
	waitMQTTGoroutines(t, "no client", 0, 0, 0)
	c := dialHand(t, b.Addr().String(), 4)
	c.write(handConnect(4, "idle", true, 60))
	c.expect(packets.Connack)
	waitMQTTGoroutines(t, "connected", 1, 1, 0)

	c.write(handPublish(4, 1, "devices/d1/telemetry", 1, []byte(`{"temp":1}`)))
	c.expect(packets.Puback)
	b.bridge.nextWrite(t)
	c.write(handPingreq)
	c.expect(packets.Pingresp)
	waitMQTTGoroutines(t, "after a publish", 1, 1, 0)

	c.write(handSubscribe(4, 2, "devices/d1/errors"))
	c.expect(packets.Suback)
	waitMQTTGoroutines(t, "subscribed", 2, 1, 1)
	c.write(handSubscribe(4, 3, "plant/#"))
	c.expect(packets.Suback)
	waitMQTTGoroutines(t, "subscribed twice", 2, 1, 1)

	other := dialHand(t, b.Addr().String(), 4)
	other.write(handConnect(4, "idle-too", true, 60))
	other.expect(packets.Connack)
	waitMQTTGoroutines(t, "a second client", 3, 2, 1)

	c.write(handDisconnect)
	c.closed()
	waitMQTTGoroutines(t, "the first client gone", 1, 1, 0)
}
