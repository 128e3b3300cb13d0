package devices

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func TestParseFrame(t *testing.T) {
	hello := masked(0x81, "hello")
	tests := []struct {
		name    string
		b       []byte
		max     int
		err     *frameError
		n, need int
		payload string
	}{
		{name: "empty", b: nil},
		{name: "one byte", b: hello[:1]},
		{name: "no mask key yet", b: hello[:5]},
		{name: "16-bit length not complete", b: []byte{0x81, 0xFE, 0x01}},
		{name: "64-bit length not complete", b: []byte{0x81, 0xFF, 0, 0, 0}},
		{name: "payload not complete", b: hello[:8], need: len(hello)},
		{name: "complete", b: hello, n: len(hello), need: len(hello), payload: "hello"},
		{name: "followed by another", b: frames(hello, masked(0x89, "p")), n: len(hello), need: len(hello), payload: "hello"},
		{name: "16-bit length", b: masked(0x81, strings.Repeat("x", 300)), n: 308, need: 308, payload: strings.Repeat("x", 300)},
		{name: "at max payload", b: masked(0x82, "abcd"), max: 4, n: 10, need: 10, payload: "abcd"},
		{name: "over max payload", b: masked(0x81, "abcde"), max: 4, err: errTooLarge},
		{name: "over max payload, 16-bit", b: masked(0x81, strings.Repeat("x", 300))[:8], max: 299, err: errTooLarge},
		{name: "over max payload, 64-bit", b: append(binary.BigEndian.AppendUint64([]byte{0x81, 0xFF}, 1<<63), maskKey[:]...), err: errTooLarge},
		{name: "too large before unmasked", b: clientFrame(0x81, false, "abcde"), max: 4, err: errTooLarge},
		{name: "unmasked", b: clientFrame(0x81, false, "hi"), err: errProtocol},
		{name: "RSV1", b: masked(0xC1, "hi"), err: errProtocol},
		{name: "RSV2", b: masked(0xA1, "hi"), err: errProtocol},
		{name: "RSV3", b: masked(0x91, "hi"), err: errProtocol},
		{name: "fragmented control", b: masked(0x09, ""), err: errProtocol},
		{name: "long control", b: masked(0x8A, strings.Repeat("p", 126)), err: errProtocol},
		{name: "control of 125 bytes", b: masked(0x8A, strings.Repeat("p", 125)), n: 131, need: 131, payload: strings.Repeat("p", 125)},
		{name: "unknown opcode is parsed", b: masked(0x83, "x"), n: 7, need: 7, payload: "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.max == 0 {
				tt.max = 1024
			}
			b := bytes.Clone(tt.b)
			f, n, need, err := parseFrame(b, tt.max)
			if err != tt.err || n != tt.n || need != tt.need {
				t.Fatalf("n %d need %d err %v; want %d %d %v", n, need, err, tt.n, tt.need, tt.err)
			}
			if string(f.payload) != tt.payload {
				t.Fatalf("payload %q, want %q", f.payload, tt.payload)
			}
			if n > 0 && (f.opcode != tt.b[0]&0x0F || f.fin != (tt.b[0]&0x80 != 0)) {
				t.Fatalf("opcode %#x fin %v of first byte %#x", f.opcode, f.fin, tt.b[0])
			}
		})
	}
}

func TestWSMessageAdd(t *testing.T) {
	frame := func(b0 byte, payload string) wsFrame {
		return wsFrame{fin: b0&0x80 != 0, opcode: b0 & 0x0F, payload: []byte(payload)}
	}
	tests := []struct {
		name   string
		frames []wsFrame
		err    *frameError // of the last frame
		want   string      // the message the last frame completes
		op     byte
	}{
		{name: "text", frames: []wsFrame{frame(0x81, "a")}, want: "a", op: opText},
		{name: "binary not UTF-8", frames: []wsFrame{frame(0x82, "\xff")}, want: "\xff", op: opBinary},
		{name: "fragments", frames: []wsFrame{frame(0x01, "a"), frame(0x00, "b"), frame(0x80, "c")}, want: "abc", op: opText},
		{name: "binary fragments", frames: []wsFrame{frame(0x02, "a"), frame(0x80, "\xff")}, want: "a\xff", op: opBinary},
		{name: "text not UTF-8", frames: []wsFrame{frame(0x81, "\xff")}, err: errTextNotUTF8},
		{name: "fragments not UTF-8", frames: []wsFrame{frame(0x01, "\xe2\x82"), frame(0x80, "x")}, err: errTextNotUTF8},
		{name: "UTF-8 split across fragments", frames: []wsFrame{frame(0x01, "\xe2\x82"), frame(0x80, "\xac")}, want: "€", op: opText},
		{name: "continuation of nothing", frames: []wsFrame{frame(0x80, "x")}, err: errProtocol},
		{name: "unfinished continuation of nothing", frames: []wsFrame{frame(0x00, "x")}, err: errProtocol},
		{name: "message inside a message", frames: []wsFrame{frame(0x01, "a"), frame(0x81, "b")}, err: errProtocol},
		{name: "fragments over max", frames: []wsFrame{frame(0x01, "abc"), frame(0x00, "de")}, err: errTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m wsMessage
			for i, f := range tt.frames {
				op, data, done, err := m.add(f, 4)
				last := i == len(tt.frames)-1
				switch {
				case !last && (err != nil || done):
					t.Fatalf("frame %d: done %v err %v", i, done, err)
				case last && err != tt.err:
					t.Fatalf("err %v, want %v", err, tt.err)
				case last && tt.err == nil && (!done || string(data) != tt.want || op != tt.op):
					t.Fatalf("done %v op %#x data %q; want %#x %q", done, op, data, tt.op, tt.want)
				}
			}
			if tt.err == nil && (m.started || m.data != nil) {
				t.Fatal("the message is kept after it completed")
			}
		})
	}
}

func TestCloseAnswer(t *testing.T) {
	tests := []struct {
		payload string
		want    uint16
	}{
		{"", 0},
		{"\x03", 1002},
		{string(closeWith(1000, "bye")), 1000},
		{string(closeWith(1003, "")), 1000},
		{string(closeWith(1013, "")), 1000},
		{string(closeWith(1015, "")), 1002},
		{string(closeWith(1004, "")), 1002},
		{string(closeWith(1005, "")), 1002},
		{string(closeWith(1006, "")), 1002},
		{string(closeWith(1014, "")), 1002},
		{string(closeWith(999, "")), 1002},
		{string(closeWith(1016, "")), 1002},
		{string(closeWith(2999, "")), 1002},
		{string(closeWith(3000, "")), 3000},
		{string(closeWith(4999, "")), 4999},
		{string(closeWith(5000, "")), 1002},
		{string(closeWith(1000, "\xff")), 1007},
		{string(closeWith(999, "\xff")), 1007},
	}
	for _, tt := range tests {
		if got := closeAnswer([]byte(tt.payload)); got != tt.want {
			t.Errorf("closeAnswer(%q) = %d, want %d", tt.payload, got, tt.want)
		}
	}
}

func TestControlError(t *testing.T) {
	if e := controlError(0xB); e.code != 1002 || e.reason != "gws: unexpected opcode 11" {
		t.Fatalf("%+v", e)
	}
	if e := errTooLarge.Error(); e != "websocket close 1009: gws: message too large" {
		t.Fatal(e)
	}
}

// FuzzParseFrame parses a device's byte stream frame by frame, as the
// direct reader does, and checks that parsing it in two pieces finds the
// same frames and errors as parsing it whole.
func FuzzParseFrame(f *testing.F) {
	f.Add(masked(0x81, `{"type":"heartbeat"}`), 3)
	f.Add(frames(masked(0x01, "ab"), masked(0x89, "p"), masked(0x80, "c")), 9)
	f.Add(masked(0x88, string(closeWith(1000, "bye"))), 1)
	f.Add(clientFrame(0x81, false, "x"), 0)
	f.Fuzz(func(t *testing.T, stream []byte, split int) {
		const max = 256
		whole := parseStream(t, bytes.Clone(stream), len(stream), max)
		if split < 0 || split > len(stream) {
			split = len(stream) / 2
		}
		if pieces := parseStream(t, bytes.Clone(stream), split, max); pieces != whole {
			t.Fatalf("split at %d: %q, whole: %q", split, pieces, whole)
		}
	})
}

// parseStream parses stream as it arrives, first its split bytes, then the
// rest, joining messages, and describes what it found.
func parseStream(t *testing.T, stream []byte, split, max int) string {
	var out strings.Builder
	var m wsMessage
	buf, at := stream[:split], 0
	for {
		fr, n, need, err := parseFrame(buf[at:], max)
		switch {
		case err != nil:
			out.WriteString("error " + err.reason)
			return out.String()
		case n == 0 && len(buf) < len(stream):
			buf = stream // the rest arrives
			continue
		case n == 0:
			if need != 0 && need <= len(buf)-at {
				t.Fatalf("incomplete frame needs %d, has %d", need, len(buf)-at)
			}
			return out.String()
		case n > len(buf)-at || need != n || len(fr.payload) > max:
			t.Fatalf("n %d need %d payload %d of %d bytes", n, need, len(fr.payload), len(buf)-at)
		}
		at += n
		if fr.opcode > opBinary {
			out.WriteString("control " + string(fr.payload) + ";")
			continue
		}
		op, data, done, ferr := m.add(fr, max)
		if ferr != nil {
			out.WriteString("error " + ferr.reason)
			return out.String()
		}
		if done {
			out.WriteString("message " + string(rune('0'+op)) + string(data) + ";")
		}
	}
}
