package bridge

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"github.com/telehub/telehub/internal/jsonx"
)

// Frame types of a device's answers to commands (WebSocket).
const (
	FrameCommandAck    = "command_ack"
	FrameCommandResult = "command_result"
)

// MaxCommandMessage bounds the message of a command result, in bytes.
const MaxCommandMessage = 1024

// commandAnswerJSON is the JSON of a command answer.
type commandAnswerJSON struct {
	Type    *string         `json:"type"`
	ID      *string         `json:"id"`
	Status  *string         `json:"status"`
	Result  json.RawMessage `json:"result"`
	Message *string         `json:"message"`
}

// ParseCommandFrame parses a WebSocket command_ack or command_result frame:
//
//	{"type":"command_ack","id":"…"}
//	{"type":"command_result","id":"…","status":"ok","result":{…},"message":"…"}
//
// result (a JSON object) and message are optional. Errors are *Error
// values with CodeBadRequest.
func ParseCommandFrame(b []byte) (CommandAnswer, error) {
	var j commandAnswerJSON
	if err := decodeAnswer(b, &j); err != nil {
		return CommandAnswer{}, err
	}
	if j.Type == nil {
		return CommandAnswer{}, Errorf("type: missing")
	}
	if j.ID == nil || *j.ID == "" || len(*j.ID) > 64 {
		return CommandAnswer{}, Errorf("id: a command id is required")
	}
	switch *j.Type {
	case FrameCommandAck:
		return CommandAnswer{ID: *j.ID}, nil
	case FrameCommandResult:
		a, err := answerResult(&j)
		a.ID = *j.ID
		return a, err
	}
	return CommandAnswer{}, Errorf("type %s: not a command answer", jsonx.Quote(*j.Type))
}

// ParseCommandResult parses the payload of an MQTT command result,
// {"status":"ok"|"error","result":{…},"message":"…"}, of the command id.
func ParseCommandResult(id string, b []byte) (CommandAnswer, error) {
	var j commandAnswerJSON
	if err := decodeAnswer(b, &j); err != nil {
		return CommandAnswer{}, err
	}
	a, err := answerResult(&j)
	a.ID = id
	return a, err
}

// decodeAnswer decodes a JSON object into j.
func decodeAnswer(b []byte, j *commandAnswerJSON) error {
	if !utf8.Valid(b) {
		return Errorf("not valid UTF-8")
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return Errorf("must be a JSON object")
	}
	if err := json.Unmarshal(b, j); err != nil {
		return Errorf("not valid JSON: %v", err)
	}
	return nil
}

// answerResult checks the result members of j.
func answerResult(j *commandAnswerJSON) (CommandAnswer, error) {
	a := CommandAnswer{IsResult: true}
	if j.Status == nil || (*j.Status != StatusOK && *j.Status != StatusError) {
		return a, Errorf(`status: must be "ok" or "error"`)
	}
	a.Status = *j.Status
	if r := bytes.TrimSpace(j.Result); len(r) > 0 && !bytes.Equal(r, []byte("null")) {
		if r[0] != '{' {
			return a, Errorf("result: must be a JSON object")
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, r); err != nil {
			return a, Errorf("result: %v", err)
		}
		a.Result = buf.Bytes()
	}
	if j.Message != nil {
		if len(*j.Message) > MaxCommandMessage {
			return a, Errorf("message: longer than %d bytes", MaxCommandMessage)
		}
		a.Message = *j.Message
	}
	return a, nil
}
