package devices

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// maskKey is the mask of the raw test client's frames.
var maskKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// clientFrame returns a frame with first byte b0 carrying payload, masked
// when masked is true, as a device sends it.
func clientFrame(b0 byte, masked bool, payload string) []byte {
	b := []byte{b0}
	m := byte(0)
	if masked {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, m|byte(n))
	case n <= 0xFFFF:
		b = binary.BigEndian.AppendUint16(append(b, m|126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, m|127), uint64(n))
	}
	if !masked {
		return append(b, payload...)
	}
	b = append(b, maskKey[:]...)
	for i := range len(payload) {
		b = append(b, payload[i]^maskKey[i&3])
	}
	return b
}

// masked returns a masked frame with first byte b0.
func masked(b0 byte, payload string) []byte { return clientFrame(b0, true, payload) }

// frames joins frames.
func frames(f ...[]byte) []byte { return bytes.Join(f, nil) }

// rawDevice is a device connection of hand-made frames.
type rawDevice struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialRawWS opens a connection of device to env, sending extra right
// after the upgrade request, in the same write.
func dialRawWS(t *testing.T, env *wsEnv, device string, extra []byte) *rawDevice {
	t.Helper()
	addr := strings.TrimPrefix(env.base, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	req := "GET /v1/devices/" + device + "/ws HTTP/1.1\r\nHost: " + addr +
		"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := c.Write(append([]byte(req), extra...)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(waitGuard))
	d := &rawDevice{conn: c, r: bufio.NewReader(c)}
	resp, err := http.ReadResponse(d.r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: HTTP %d", resp.StatusCode)
	}
	return d
}

// write sends b.
func (d *rawDevice) write(t *testing.T, b []byte) {
	t.Helper()
	if _, err := d.conn.Write(b); err != nil {
		t.Fatal(err)
	}
}

// next returns the opcode and payload of the hub's next frame; ok is
// false when the connection ended first.
func (d *rawDevice) next(t *testing.T) (op byte, payload []byte, ok bool) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(d.r, h[:]); err != nil {
		return 0, nil, false
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(d.r, l[:]); err != nil {
			t.Fatal(err)
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(d.r, l[:]); err != nil {
			t.Fatal(err)
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(d.r, payload); err != nil {
		t.Fatal(err)
	}
	return h[0] & 0x0F, payload, true
}

// closePayload returns the payload of the hub's close frame, failing when
// another frame or none comes.
func (d *rawDevice) closePayload(t *testing.T) []byte {
	t.Helper()
	op, payload, ok := d.next(t)
	if !ok || op != opClose {
		t.Fatalf("got opcode %#x (%q, ok %v), want a close frame", op, payload, ok)
	}
	return payload
}

// closeWith is a close frame's payload: code and reason.
func closeWith(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

// TestWSProtocolErrors sends frames that break the protocol and checks
// the hub's close frame: code and reason, as gws sends them.
func TestWSProtocolErrors(t *testing.T) {
	const protocol = "gws: protocol error"
	tests := []struct {
		name string
		send []byte
		want []byte // the close frame's payload
	}{
		{"unmasked frame", clientFrame(0x81, false, "{}"), closeWith(1002, protocol)},
		{"reserved bit 1", masked(0xC1, "{}"), closeWith(1002, protocol)},
		{"reserved bit 2", masked(0xA1, "{}"), closeWith(1002, protocol)},
		{"reserved bit 3", masked(0x91, "{}"), closeWith(1002, protocol)},
		{"opcode 3", masked(0x83, ""), closeWith(1002, "gws: unexpected opcode 3")},
		{"opcode 11", masked(0x8B, "x"), closeWith(1002, "gws: unexpected opcode 11")},
		{"fragmented ping", masked(0x09, "x"), closeWith(1002, protocol)},
		{"ping over 125 bytes", masked(0x89, strings.Repeat("p", 126)), closeWith(1002, protocol)},
		{"continuation of nothing", masked(0x80, "x"), closeWith(1002, protocol)},
		{"message inside a message", frames(masked(0x01, "{"), masked(0x81, "}")), closeWith(1002, protocol)},
		{"frame over max payload", masked(0x81, strings.Repeat("a", 1025))[:8], closeWith(1009, "gws: message too large")},
		{"64-bit length", append(binary.BigEndian.AppendUint64([]byte{0x81, 0xFF}, 1<<40), maskKey[:]...), closeWith(1009, "gws: message too large")},
		{"64-bit length with the top bit", append(binary.BigEndian.AppendUint64([]byte{0x81, 0xFF}, 1<<63), maskKey[:]...), closeWith(1009, "gws: message too large")},
		{"fragments over max payload", frames(masked(0x01, strings.Repeat("a", 800)), masked(0x80, strings.Repeat("a", 800))), closeWith(1009, "gws: message too large")},
		{"invalid UTF-8", masked(0x81, "{\"x\":\"\xff\"}"), closeWith(1007, "gws: invalid text encoding")},
		{"invalid UTF-8 across fragments", frames(masked(0x01, "{\"x\":\"\xe2\x82"), masked(0x80, "\"}")), closeWith(1007, "gws: invalid text encoding")},
		{"close without code", masked(0x88, ""), nil},
		{"close of one byte", masked(0x88, "\x03"), closeWith(1002, "")},
		{"close 1000", masked(0x88, string(closeWith(1000, "bye"))), closeWith(1000, "")},
		{"close 1001", masked(0x88, string(closeWith(1001, ""))), closeWith(1000, "")},
		{"close 1005", masked(0x88, string(closeWith(1005, ""))), closeWith(1002, "")},
		{"close 999", masked(0x88, string(closeWith(999, ""))), closeWith(1002, "")},
		{"close 1016", masked(0x88, string(closeWith(1016, ""))), closeWith(1002, "")},
		{"close 3000", masked(0x88, string(closeWith(3000, ""))), closeWith(3000, "")},
		{"close 4999", masked(0x88, string(closeWith(4999, "x"))), closeWith(4999, "")},
		{"close 5000", masked(0x88, string(closeWith(5000, ""))), closeWith(1002, "")},
		{"close reason not UTF-8", masked(0x88, string(closeWith(1000, "\xff"))), closeWith(1007, "")},
		{"fragmented close", masked(0x08, string(closeWith(1000, ""))), closeWith(1002, protocol)},
	}
	env := newWSEnv(t, WSConfig{MaxPayload: 1024})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := dialRawWS(t, env, fmt.Sprintf("p%d", i), nil)
			d.write(t, tt.send)
			if got := d.closePayload(t); !bytes.Equal(got, tt.want) {
				t.Fatalf("close payload %q, want %q", got, tt.want)
			}
			if _, _, ok := d.next(t); ok {
				t.Fatal("a frame after the close")
			}
			waitFor(t, "the connection to end", func() bool { return env.openConns() == 0 })
			if n := env.ing.submitted(); n != 0 {
				t.Fatalf("%d payloads submitted", n)
			}
		})
	}
}

// TestWSFramesInPieces sends a fragmented message, a ping between its
// fragments, one byte per write: the hub answers the ping, then acks the
// message.
func TestWSFramesInPieces(t *testing.T) {
	env := newWSEnv(t, WSConfig{})
	d := dialRawWS(t, env, "d1", nil)
	stream := frames(
		masked(0x01, `{"type":"telemetry",`),
		masked(0x89, "p"),
		masked(0x00, `"seq":1,`),
		masked(0x80, `"values":{"x":`+strings.Repeat("1", 300)+`}}`),
	)
	for i := range stream {
		d.write(t, stream[i:i+1])
	}
	if op, payload, _ := d.next(t); op != opPong || string(payload) != "p" {
		t.Fatalf("got opcode %#x %q, want the pong", op, payload)
	}
	if op, payload, _ := d.next(t); op != opText || string(payload) != `{"type":"ack","seq":1}` {
		t.Fatalf("got opcode %#x %q, want the ack", op, payload)
	}
}

// TestWSFramesWithTheHandshake sends frames in the same write as the
// upgrade request: they are read after the handshake, not lost.
func TestWSFramesWithTheHandshake(t *testing.T) {
	env := newWSEnv(t, WSConfig{})
	d := dialRawWS(t, env, "d1", frames(
		masked(0x81, `{"type":"telemetry","seq":1,"values":{"x":1}}`),
		masked(0x81, `{"type":"telemetry","seq":2,"values":{"x":2}}`),
	))
	for seq := 1; seq <= 2; seq++ {
		want := fmt.Sprintf(`{"type":"ack","seq":%d}`, seq)
		if op, payload, _ := d.next(t); op != opText || string(payload) != want {
			t.Fatalf("got opcode %#x %q, want %s", op, payload, want)
		}
	}
}

// BenchmarkWSFrameRoundTrip measures one device that sends a frame and
// waits for its ack before the next: each frame finds the connection
// idle, so this is the cost of waking its reader.
func BenchmarkWSFrameRoundTrip(b *testing.B) {
	for _, bench := range wsReadBenches(1) {
		b.Run(bench.name, func(b *testing.B) {
			env := newBenchEnv(b, bench.gwsReads)
			c, err := tryDial(env.url("rtt"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer c.stop()
			frame := `{"type":"telemetry","seq":1,"values":{"temp":21.5}}`
			b.ReportAllocs()
			for b.Loop() {
				if err := c.conn.WriteString(frame); err != nil {
					b.Fatal(err)
				}
				if got := <-c.events; got != `msg:{"type":"ack","seq":1}` {
					b.Fatalf("answer %s", got)
				}
			}
		})
	}
}
