package wsframe

import "encoding/binary"

// Opcodes of the frames telehub writes.
const (
	OpText = 0x1
	OpPing = 0x9
	OpPong = 0xA
)

// final is the FIN bit of the first header byte.
const final = 0x80

// MaxControlPayload is the longest payload of a ping or pong frame.
const MaxControlPayload = 125

// HeaderLen is the length of the header of an unmasked frame carrying n
// payload bytes.
func HeaderLen(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xFFFF:
		return 4
	}
	return 10
}

// AppendHeader appends the header of an unmasked, final frame of opcode
// carrying n payload bytes; the payload is appended next.
func AppendHeader(b []byte, opcode byte, n int) []byte {
	b = append(b, final|opcode)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
}

// AppendFrame appends a complete frame of opcode carrying payload. Control
// frames (ping, pong) must carry at most MaxControlPayload bytes.
func AppendFrame[P []byte | string](b []byte, opcode byte, payload P) []byte {
	return append(AppendHeader(b, opcode, len(payload)), payload...)
}

// reserved is the room Begin leaves for a header: enough for payloads up
// to 64 KiB, the usual case, without moving the payload.
const reserved = 4

// Begin starts a frame whose payload the caller appends next, when its
// length is not known in advance: it returns b with room for the header
// and the offset to give End.
func Begin(b []byte) (_ []byte, start int) {
	return append(b, make([]byte, reserved)...), len(b)
}

// End completes the frame started at start by Begin, whose payload is
// everything appended since: it writes the header, moving the payload
// when the header is not exactly the room reserved.
func End(b []byte, start int, opcode byte) []byte {
	n := len(b) - start - reserved
	var hdr [10]byte
	h := AppendHeader(hdr[:0], opcode, n)
	if len(h) > reserved {
		b = append(b, make([]byte, len(h)-reserved)...)
	}
	copy(b[start+len(h):], b[start+reserved:start+reserved+n])
	copy(b[start:], h)
	return b[:start+len(h)+n]
}
