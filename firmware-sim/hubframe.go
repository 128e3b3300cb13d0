package firmwaresim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// ErrBadHubFrame is wrapped by parseHubFrame errors.
var ErrBadHubFrame = errors.New("bad frame from hub")

// frameKind is the kind of a frame the hub sends a WebSocket device.
type frameKind uint8

const (
	frameOther   frameKind = iota // a type this simulator does not know
	frameAck                      // {"type":"ack","seq":N} or {"type":"ack"}
	frameError                    // {"type":"error","seq":N,"code":…,"message":…}
	frameCommand                  // {"type":"command","id":…,"name":…,"params":{…},"expires":…}
)

// hubFrame is a parsed hub → device frame.
type hubFrame struct {
	Kind    frameKind
	Seq     uint64
	HasSeq  bool
	Code    string
	Message string
	Cmd     *command // frameCommand: the command
}

// ackPrefix is how the hub usually writes an ack; parseHubFrame reads it
// without encoding/json.
var ackPrefix = []byte(`{"type":"ack","seq":`)

// parseHubFrame parses a text frame the hub sent a device.
func parseHubFrame(b []byte) (hubFrame, error) {
	if f, ok := parseFastAck(b); ok {
		return f, nil
	}
	var raw struct {
		Type    string          `json:"type"`
		Seq     json.RawMessage `json:"seq"`
		Code    string          `json:"code"`
		Message string          `json:"message"`
		commandJSON
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return hubFrame{}, fmt.Errorf("%w: %w", ErrBadHubFrame, err)
	}
	f := hubFrame{Code: raw.Code, Message: raw.Message}
	switch raw.Type {
	case "ack":
		f.Kind = frameAck
	case "error":
		f.Kind = frameError
	case "command":
		c, err := raw.command()
		if err != nil {
			return hubFrame{}, fmt.Errorf("%w: %w", ErrBadHubFrame, err)
		}
		f.Kind, f.Cmd = frameCommand, &c
	}
	if len(raw.Seq) > 0 && !bytes.Equal(raw.Seq, []byte("null")) {
		seq, err := strconv.ParseUint(string(raw.Seq), 10, 64)
		if err != nil {
			return hubFrame{}, fmt.Errorf("%w: seq %s", ErrBadHubFrame, raw.Seq)
		}
		f.Seq, f.HasSeq = seq, true
	}
	return f, nil
}

// parseFastAck reads exactly {"type":"ack","seq":<digits>}.
func parseFastAck(b []byte) (hubFrame, bool) {
	digits, ok := bytes.CutPrefix(b, ackPrefix)
	if !ok {
		return hubFrame{}, false
	}
	digits, ok = bytes.CutSuffix(digits, []byte("}"))
	if !ok || len(digits) == 0 || len(digits) > 20 || (len(digits) > 1 && digits[0] == '0') {
		return hubFrame{}, false
	}
	var seq uint64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return hubFrame{}, false
		}
		d := uint64(c - '0')
		if seq > (^uint64(0)-d)/10 {
			return hubFrame{}, false
		}
		seq = seq*10 + d
	}
	return hubFrame{Kind: frameAck, Seq: seq, HasSeq: true}, true
}
