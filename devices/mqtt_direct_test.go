package devices

import (
	"bytes"
	"errors"
	"io"
	"testing"

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
