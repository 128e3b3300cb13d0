package devices

import (
	"encoding/binary"
	"strconv"
	"unicode/utf8"
)

// The frame reader below is the read side of a device connection read
// without gws's ReadLoop (ws_direct.go). It checks what gws checks, in the
// same order, and answers a violation with the close code and reason gws
// sends for it, so that a device cannot tell the two readers apart.

// Opcodes of the frames a device sends (RFC 6455 §5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// Close codes of the violations the frame reader finds.
const (
	closeNormal         = 1000
	closeProtocolError  = 1002
	closeInvalidData    = 1007 // a text message or close reason not UTF-8
	closeMessageTooBig  = 1009
	maxControlPayload   = 125
	maxFrameHeaderBytes = 14
)

// frameError is a violation of the protocol by the device: the connection
// is closed with code and reason.
type frameError struct {
	code   uint16
	reason string
}

func (e *frameError) Error() string {
	return "websocket close " + strconv.Itoa(int(e.code)) + ": " + e.reason
}

// The violations, with the reasons gws gives them.
var (
	errProtocol    = &frameError{closeProtocolError, "gws: protocol error"}
	errTooLarge    = &frameError{closeMessageTooBig, "gws: message too large"}
	errTextNotUTF8 = &frameError{closeInvalidData, "gws: invalid text encoding"}
)

// wsFrame is one frame of a device.
type wsFrame struct {
	fin     bool
	opcode  byte
	payload []byte // unmasked, in the caller's buffer
}

// parseFrame parses the frame at the start of b, unmasking its payload in
// place. It returns the frame and the bytes it takes. When b holds only
// part of the frame, n is 0 and need is the length of the whole frame
// once its header is complete (else 0): header violations, a payload over
// maxPayload among them, are found as soon as the header is.
func parseFrame(b []byte, maxPayload int) (f wsFrame, n, need int, err *frameError) {
	at, length, ok := frameLength(b)
	masked := ok && b[1]&0x80 != 0
	if masked {
		at += 4 // the mask key, part of the header
	}
	if !ok || len(b) < at {
		return f, 0, 0, nil
	}
	if length > uint64(maxPayload) {
		return f, 0, 0, errTooLarge
	}
	if b[0]&0x70 != 0 { // RSV1-3: no extension is negotiated
		return f, 0, 0, errProtocol
	}
	if !masked { // a client's frames are masked
		return f, 0, 0, errProtocol
	}
	f.fin, f.opcode = b[0]&0x80 != 0, b[0]&0x0F
	if f.opcode > opBinary && (!f.fin || b[1]&0x7F > maxControlPayload) {
		return f, 0, 0, errProtocol // a control frame: final and short
	}
	need = at + int(length)
	if len(b) < need {
		return f, 0, need, nil
	}
	f.payload = b[at:need]
	unmask(f.payload, b[at-4:at])
	return f, need, need, nil
}

// frameLength returns the length of the frame header without its mask key
// and the payload length, or ok false when b does not hold them yet.
func frameLength(b []byte) (at int, length uint64, ok bool) {
	if len(b) < 2 {
		return 0, 0, false
	}
	switch code := b[1] & 0x7F; code {
	case 126:
		if len(b) < 4 {
			return 0, 0, false
		}
		return 4, uint64(binary.BigEndian.Uint16(b[2:])), true
	case 127:
		if len(b) < 10 {
			return 0, 0, false
		}
		return 10, binary.BigEndian.Uint64(b[2:]), true
	default:
		return 2, uint64(code), true
	}
}

// unmask applies the mask key to p.
func unmask(p, key []byte) {
	for i := range p {
		p[i] ^= key[i&3]
	}
}

// wsMessage joins the frames of a fragmented data message.
type wsMessage struct {
	data    []byte // the fragments so far; nil outside a message
	opcode  byte
	started bool
}

// add takes data frame f and returns the message it completes, if any
// (done). The message's data is f's payload or the joined fragments.
func (m *wsMessage) add(f wsFrame, maxPayload int) (opcode byte, data []byte, done bool, err *frameError) {
	if f.opcode != opContinuation && m.started {
		return 0, nil, false, errProtocol // a new message inside another
	}
	if f.fin && f.opcode != opContinuation {
		return f.opcode, f.payload, true, checkText(f.opcode, f.payload)
	}
	if f.opcode != opContinuation {
		m.started, m.opcode = true, f.opcode
		m.data = make([]byte, 0, len(f.payload))
	}
	if !m.started {
		return 0, nil, false, errProtocol // a continuation of nothing
	}
	m.data = append(m.data, f.payload...)
	if len(m.data) > maxPayload {
		return 0, nil, false, errTooLarge
	}
	if !f.fin {
		return 0, nil, false, nil
	}
	opcode, data = m.opcode, m.data
	*m = wsMessage{}
	return opcode, data, true, checkText(opcode, data)
}

// checkText refuses a text message that is not UTF-8.
func checkText(opcode byte, data []byte) *frameError {
	if opcode == opText && !utf8.Valid(data) {
		return errTextNotUTF8
	}
	return nil
}

// controlError is the violation of a control frame of an opcode that is
// none of close, ping and pong.
func controlError(opcode byte) *frameError {
	return &frameError{closeProtocolError, "gws: unexpected opcode " + strconv.Itoa(int(opcode))}
}

// closeAnswer returns the close code that answers a device's close frame
// with payload, as gws answers it: none (0) for an empty payload, 1002
// for a malformed one or a code a peer may not send, 1007 for a reason
// that is not UTF-8, 1000 for the codes of the protocol, the code itself
// for a code of an application.
func closeAnswer(payload []byte) uint16 {
	switch len(payload) {
	case 0:
		return 0
	case 1:
		return closeProtocolError
	}
	code := binary.BigEndian.Uint16(payload)
	answer := uint16(closeNormal)
	switch {
	case code == 1004 || code == 1005 || code == 1006 || code == 1014 || code == 1015:
		answer = closeProtocolError
	case code < 1000 || code >= 5000 || (code >= 1016 && code < 3000):
		answer = closeProtocolError
	case code >= 3000:
		answer = code
	}
	if !utf8.Valid(payload[2:]) {
		answer = closeInvalidData
	}
	return answer
}
