package devices

import (
	"encoding/binary"
	"strconv"
	"unicode/utf8"
)

// WebSocket opcodes of the frames the hub writes itself.
const (
	opText = 0x1
	opPing = 0x9
	opPong = 0xA
)

// appendAnswerFrame appends a's answer as an unmasked text frame.
func appendAnswerFrame(b []byte, a *answer) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0) // room for the longest header used
	b = appendAnswerJSON(b, a)
	return finishFrame(b, start, opText)
}

// finishFrame writes the header of the frame whose payload follows the 4
// bytes reserved at b[start:], shifting the payload when the header is
// shorter. Payloads are under 64 KiB.
func finishFrame(b []byte, start int, opcode byte) []byte {
	n := len(b) - start - 4
	b[start] = 0x80 | opcode
	if n < 126 {
		b[start+1] = byte(n)
		copy(b[start+2:], b[start+4:])
		return b[:len(b)-2]
	}
	b[start+1] = 126
	binary.BigEndian.PutUint16(b[start+2:], uint16(n))
	return b
}

// appendAnswerJSON appends {"type":"ack","seq":N} or
// {"type":"error","seq":N,"code":…,"message":…}, seq only when known.
func appendAnswerJSON(b []byte, a *answer) []byte {
	if a.err == nil {
		b = append(b, `{"type":"ack"`...)
	} else {
		b = append(b, `{"type":"error"`...)
	}
	if a.hasSeq {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, a.seq, 10)
	}
	if a.err != nil {
		b = append(b, `,"code":`...)
		b = appendJSONString(b, a.err.Code, maxAnswerMessage)
		b = append(b, `,"message":`...)
		b = appendJSONString(b, a.err.Message, maxAnswerMessage)
	}
	return append(b, '}')
}

// appendJSONString appends s, cut to at most limit bytes on a rune
// boundary, as a JSON string. Invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string, limit int) []byte {
	const hex = "0123456789abcdef"
	if len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
