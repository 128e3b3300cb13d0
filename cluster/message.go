package cluster

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/storage"
)

// A message between hubs is a JSON object: the origin's id of the write's
// first event ("id"), the ids of all its events ("ids"), the commit time
// and the hub's receive time (unix ms), and either the device's frame as
// it sent it or the presence change:
//
//	{"id":42,"ids":["…","…"],"committed":1764064800125,"seen":1764064800120,
//	 "frame":{"type":"telemetry","seq":7,"values":{"temp":21.5,"hum":40}}}
//	{"id":43,"ids":["…"],"committed":…,"seen":…,
//	 "presence":{"online":true,"transport":"ws","reason":"connect","session":3}}
//
// The origin sequence of a frame without seq is its "id": per origin node
// and device, ids only grow.

// Outbox bodies: the kind, the number of events, the device, then the
// JSON object of the message without the members only known at commit.
const (
	outboxTelemetry = 't'
	outboxPresence  = 'p'
)

// Limits of a peer message.
const (
	maxEventIDs = 4096 // events of one write (readings of one frame)
	maxIDLen    = 128
)

// errBadMessage is wrapped by every error of parseMessage.
var errBadMessage = errors.New("invalid peer message")

// outboxHeader appends the header of an outbox body to b.
func outboxHeader(b []byte, kind byte, events int, device string) []byte {
	b = append(b, kind)
	b = binary.AppendUvarint(b, uint64(events))
	b = binary.AppendUvarint(b, uint64(len(device)))
	return append(b, device...)
}

// telemetryBody is the outbox body of the readings of one frame.
func telemetryBody(device string, events int, seen time.Time, raw []byte) []byte {
	b := make([]byte, 0, len(raw)+len(device)+48)
	b = outboxHeader(b, outboxTelemetry, events, device)
	b = append(b, `{"seen":`...)
	b = strconv.AppendInt(b, seen.UnixMilli(), 10)
	b = append(b, `,"frame":`...)
	b = append(b, raw...)
	return append(b, '}')
}

// presenceBody is the outbox body of one presence change.
func presenceBody(device string, p *bridge.Presence, at time.Time) []byte {
	b := make([]byte, 0, len(device)+128)
	b = outboxHeader(b, outboxPresence, 1, device)
	b = append(b, `{"seen":`...)
	b = strconv.AppendInt(b, at.UnixMilli(), 10)
	b = p.AppendMembers(append(b, `,"presence":{`...))
	return append(b, "}}"...)
}

// outboxMessage is an outbox entry ready to publish.
type outboxMessage struct {
	kind    byte
	device  string
	payload []byte
}

// wireMessage makes the message of an outbox entry: the body's JSON with
// the ids and commit time in front.
func wireMessage(e storage.OutboxEntry, ids storage.IDCodec) (outboxMessage, error) {
	body := e.Body
	if len(body) < 1 {
		return outboxMessage{}, fmt.Errorf("outbox %d: empty", e.ID)
	}
	kind := body[0]
	events, n := binary.Uvarint(body[1:])
	if n <= 0 || events == 0 || events > maxEventIDs {
		return outboxMessage{}, fmt.Errorf("outbox %d: bad event count", e.ID)
	}
	body = body[1+n:]
	dlen, n := binary.Uvarint(body)
	if n <= 0 || uint64(len(body)-n) < dlen {
		return outboxMessage{}, fmt.Errorf("outbox %d: bad device", e.ID)
	}
	device := string(body[n : n+int(dlen)])
	rest := body[n+int(dlen):]
	if len(rest) < 2 || rest[0] != '{' || (kind != outboxTelemetry && kind != outboxPresence && kind != outboxCommand) {
		return outboxMessage{}, fmt.Errorf("outbox %d: bad body", e.ID)
	}
	b := make([]byte, 0, len(rest)+int(events)*(ids.Len()+3)+48)
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, e.ID, 10)
	b = append(b, `,"ids":[`...)
	for i := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = ids.AppendFormatAt(b, e.ID+i, e.Time)
		b = append(b, '"')
	}
	b = append(b, `],"committed":`...)
	b = strconv.AppendInt(b, e.Committed.UnixMilli(), 10)
	b = append(b, ',')
	b = append(b, rest[1:]...)
	return outboxMessage{kind: kind, device: device, payload: b}, nil
}

// peerMessage is a message of a peer hub, parsed.
type peerMessage struct {
	ID        uint64          `json:"id"`
	IDs       []string        `json:"ids"`
	Committed int64           `json:"committed"`
	Seen      int64           `json:"seen"`
	Frame     json.RawMessage `json:"frame"`
	Presence  *peerPresence   `json:"presence"`
	Command   json.RawMessage `json:"command"`
}

// peerPresence is the presence change of a peer message.
type peerPresence struct {
	Online    bool   `json:"online"`
	Transport string `json:"transport"`
	Reason    string `json:"reason"`
	Session   uint64 `json:"session"`
}

// parseMessage parses a peer message of the given level (levelWS: a frame,
// levelPresence: a presence change). The frame itself is parsed by the
// bridge; the presence transport and reason are checked by the bridge.
func parseMessage(level string, payload []byte) (peerMessage, error) {
	var m peerMessage
	d := json.NewDecoder(bytes.NewReader(payload))
	if err := d.Decode(&m); err != nil {
		return m, fmt.Errorf("%w: %v", errBadMessage, err)
	}
	if d.More() {
		return m, fmt.Errorf("%w: data after the object", errBadMessage)
	}
	switch {
	case m.ID == 0:
		return m, fmt.Errorf("%w: no id", errBadMessage)
	case len(m.IDs) == 0 || len(m.IDs) > maxEventIDs:
		return m, fmt.Errorf("%w: %d event ids", errBadMessage, len(m.IDs))
	case m.Committed <= 0 || m.Seen <= 0:
		return m, fmt.Errorf("%w: no commit or receive time", errBadMessage)
	case level == levelWS && (len(m.Frame) == 0 || m.Presence != nil || len(m.Command) != 0):
		return m, fmt.Errorf("%w: a reading message carries a frame only", errBadMessage)
	case level == levelPresence && (m.Presence == nil || len(m.Frame) != 0 || len(m.Command) != 0 || len(m.IDs) != 1):
		return m, fmt.Errorf("%w: a presence message carries one presence change only", errBadMessage)
	case level == levelCommands && (len(m.Command) == 0 || len(m.Frame) != 0 || m.Presence != nil || len(m.IDs) != 1):
		return m, fmt.Errorf("%w: a command message carries one command only", errBadMessage)
	}
	for _, id := range m.IDs {
		if id == "" || len(id) > maxIDLen {
			return m, fmt.Errorf("%w: event id of %d bytes", errBadMessage, len(id))
		}
	}
	return m, nil
}

// origin is the bridge origin of a message of node.
func (m *peerMessage) origin(node string) *bridge.Origin {
	return &bridge.Origin{Node: node, ID: m.ID, EventIDs: m.IDs}
}
