package wsframe

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// parse decodes one unmasked frame of b: its first byte, payload and the
// bytes after it.
func parse(t *testing.T, b []byte) (first byte, payload, rest []byte) {
	t.Helper()
	if len(b) < 2 || b[1]&0x80 != 0 {
		t.Fatalf("frame % x: short or masked", b)
	}
	n, at := uint64(b[1]), 2
	switch n {
	case 126:
		n, at = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		n, at = binary.BigEndian.Uint64(b[2:]), 10
	}
	if uint64(len(b)-at) < n {
		t.Fatalf("frame says %d payload bytes, has %d", n, len(b)-at)
	}
	return b[0], b[at : at+int(n)], b[at+int(n):]
}

// sizes cover each header form and its edges.
var sizes = []int{0, 1, 125, 126, 127, 0xFFFF, 0x10000, 70000}

func TestAppendFrame(t *testing.T) {
	for _, n := range sizes {
		payload := []byte(strings.Repeat("x", n))
		b := AppendFrame([]byte("prefix"), OpText, payload)
		if !bytes.HasPrefix(b, []byte("prefix")) {
			t.Fatalf("n=%d: prefix overwritten", n)
		}
		if len(b)-len("prefix") != HeaderLen(n)+n {
			t.Fatalf("n=%d: %d bytes, HeaderLen says %d", n, len(b)-len("prefix"), HeaderLen(n)+n)
		}
		first, got, rest := parse(t, b[len("prefix"):])
		if first != 0x81 || !bytes.Equal(got, payload) || len(rest) != 0 {
			t.Fatalf("n=%d: first %#x, %d payload bytes, %d after", n, first, len(got), len(rest))
		}
	}
}

func TestBeginEnd(t *testing.T) {
	for _, n := range sizes {
		payload := []byte(strings.Repeat("y", n))
		b, start := Begin([]byte("prefix"))
		b = append(b, payload...)
		b = End(b, start, OpText)
		if want := AppendFrame([]byte("prefix"), OpText, payload); !bytes.Equal(b, want) {
			t.Fatalf("n=%d: Begin/End differs from AppendFrame", n)
		}
	}
}

func TestControlFrames(t *testing.T) {
	if got := AppendFrame(nil, OpPing, ""); !bytes.Equal(got, []byte{0x89, 0}) {
		t.Errorf("ping % x", got)
	}
	if got := AppendFrame(nil, OpPong, []byte("ab")); !bytes.Equal(got, []byte{0x8a, 2, 'a', 'b'}) {
		t.Errorf("pong % x", got)
	}
}
