package stream

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/jsonx"
	"github.com/telehub/telehub/internal/wsframe"
	"github.com/telehub/telehub/storage"
)

// format is a watcher wire format.
type format uint8

// The wire formats; also indexes of per-format arrays.
const (
	formatSSE format = 0
	formatWS  format = 1
)

// frame is one entry of a watcher's backlog: the wire bytes of an event or
// of a control message, or a replay to run at that point of the stream.
// Event frames are shared by every watcher of their format: never modify b.
type frame struct {
	b      []byte
	event  bool    // b is an event (counted in EventsDelivered)
	replay *replay // when set, b is empty
}

// pending holds the frames of the record being fanned out, made on first
// use, one per format.
type pending [2]*frame

// encoder makes the shared event frames of Publish. It carves bytes and
// frames out of larger chunks to spare the allocator one object per event;
// a chunk lives as long as any frame in it. It is used under Hub.mu only.
type encoder struct {
	ids    storage.IDCodec
	bytes  []byte  // free space of the current byte chunk
	frames []frame // free frames of the current frame chunk
}

// Chunk sizes of the encoder. Events larger than a quarter of a byte chunk
// get their own allocation.
const (
	byteChunk  = 32 << 10
	frameChunk = 128
)

// frame returns the frame of rec in format f, encoding it on first use.
func (e *encoder) frame(p *pending, f format, rec *storage.Record) *frame {
	if p[f] != nil {
		return p[f]
	}
	var b []byte
	if f == formatSSE {
		b = appendSSEEvent(e.alloc(sseEventLen(e.ids, rec)), e.ids, rec)
	} else {
		b = appendWSEvent(e.alloc(wsEventLen(e.ids, rec)), e.ids, rec)
	}
	fr := e.newFrame()
	fr.b, fr.event = b, true
	p[f] = fr
	return fr
}

// alloc returns an empty slice with capacity n that no one else uses.
func (e *encoder) alloc(n int) []byte {
	if n > byteChunk/4 {
		return make([]byte, 0, n)
	}
	if cap(e.bytes) < n {
		e.bytes = make([]byte, byteChunk)
	}
	b := e.bytes[:0:n]
	e.bytes = e.bytes[n:]
	return b
}

// newFrame returns a zero frame from the current chunk.
func (e *encoder) newFrame() *frame {
	if len(e.frames) == 0 {
		e.frames = make([]frame, frameChunk)
	}
	f := &e.frames[0]
	e.frames = e.frames[1:]
	return f
}

// idLen is the length of every id of codec.
func idLen(ids storage.IDCodec) int { return ids.Len() }

// SSE event: "id: <id>\nevent: <kind>\ndata: <data>\n\n". Data holding line
// breaks (compact JSON never does) is split over several data lines.
const (
	sseID   = "id: "
	sseKind = "\nevent: "
	sseData = "\ndata: "
	sseEnd  = "\n\n"
)

// sseEventLen is the exact length appendSSEEvent adds for rec.
func sseEventLen(ids storage.IDCodec, rec *storage.Record) int {
	return len(sseID) + idLen(ids) + len(sseKind) + len(rec.Kind.String()) + sseDataLen(rec.Data) + len(sseEnd)
}

// appendSSEEvent appends the SSE event of rec to b.
func appendSSEEvent(b []byte, ids storage.IDCodec, rec *storage.Record) []byte {
	b = append(b, sseID...)
	b = ids.AppendFormatAt(b, rec.ID, rec.Time)
	b = append(b, sseKind...)
	b = append(b, rec.Kind.String()...)
	b = appendSSEData(b, rec.Data)
	return append(b, sseEnd...)
}

// sseDataLen is the length appendSSEData adds for data.
func sseDataLen(data []byte) int {
	n := len(sseData) + len(data)
	if !bytes.ContainsAny(data, "\r\n") {
		return n
	}
	for _, c := range data {
		if c == '\r' || c == '\n' {
			n += len(sseData) - 1
		}
	}
	return n
}

// appendSSEData appends data as "\ndata: " lines, one per line of data.
func appendSSEData(b, data []byte) []byte {
	b = append(b, sseData...)
	for {
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			return append(b, data...)
		}
		b = append(b, data[:i]...)
		b = append(b, sseData...)
		data = data[i+1:]
	}
}

// SSE control lines.
var (
	sseRetry = []byte("retry: 2000\n\n")
	ssePing  = []byte(": ping\n\n")
)

// appendSSEReset appends the reset event announcing oldest ("" when the
// log retains nothing) and, unless zero, since.
func appendSSEReset(b []byte, oldest string, since time.Time) []byte {
	b = append(b, "event: reset\ndata: {\"oldest\":"...)
	b = jsonx.AppendString(b, oldest)
	if !since.IsZero() {
		b = append(b, `,"since":"`...)
		b = append(bridge.AppendTime(b, since), '"')
	}
	return append(b, "}\n\n"...)
}

// WebSocket event: one unmasked text frame holding
// {"op":"event","id":"<id>","event":"<kind>","data":<data>}.
const (
	wsEventOpen  = `{"op":"event","id":"`
	wsEventKind  = `","event":"`
	wsEventData  = `","data":`
	wsEventClose = `}`
	wsNull       = `null`
)

// wsPayloadLen is the length of rec's event message.
func wsPayloadLen(ids storage.IDCodec, rec *storage.Record) int {
	data := len(rec.Data)
	if data == 0 {
		data = len(wsNull)
	}
	return len(wsEventOpen) + idLen(ids) + len(wsEventKind) + len(rec.Kind.String()) +
		len(wsEventData) + data + len(wsEventClose)
}

// wsEventLen is the exact length appendWSEvent adds for rec.
func wsEventLen(ids storage.IDCodec, rec *storage.Record) int {
	n := wsPayloadLen(ids, rec)
	return wsframe.HeaderLen(n) + n
}

// appendWSEvent appends the complete WebSocket frame of rec's event to b.
func appendWSEvent(b []byte, ids storage.IDCodec, rec *storage.Record) []byte {
	b = wsframe.AppendHeader(b, wsframe.OpText, wsPayloadLen(ids, rec))
	b = append(b, wsEventOpen...)
	b = ids.AppendFormatAt(b, rec.ID, rec.Time)
	b = append(b, wsEventKind...)
	b = append(b, rec.Kind.String()...)
	b = append(b, wsEventData...)
	if len(rec.Data) == 0 {
		b = append(b, wsNull...)
	} else {
		b = append(b, rec.Data...)
	}
	return append(b, wsEventClose...)
}

// wsPing is a server ping frame without payload.
var wsPing = wsframe.AppendFrame(nil, wsframe.OpPing, "")

// wsMessage returns the text frame of v encoded as JSON.
func wsMessage(v any) []byte {
	payload, err := json.Marshal(v)
	if err != nil {
		// Only the hub's own message structs come here, and they always
		// encode.
		payload = []byte(`{"op":"error","message":"internal error"}`)
	}
	return wsframe.AppendFrame(make([]byte, 0, wsframe.HeaderLen(len(payload))+len(payload)), wsframe.OpText, payload)
}

// wsOpMessage is every hub-to-client message other than events.
type wsOpMessage struct {
	Op      string   `json:"op"`
	Topics  []string `json:"topics,omitempty"`
	Oldest  *string  `json:"oldest,omitempty"`
	Since   string   `json:"since,omitempty"`
	Message string   `json:"message,omitempty"`
}

// appendWSReset appends the reset message announcing oldest and, unless
// zero, since as a frame.
func appendWSReset(b []byte, oldest string, since time.Time) []byte {
	m := wsOpMessage{Op: "reset", Oldest: &oldest}
	if !since.IsZero() {
		m.Since = bridge.FormatTime(since)
	}
	return append(b, wsMessage(m)...)
}

// appendEvent appends rec in format f to b (replay path: not shared).
func (f format) appendEvent(b []byte, ids storage.IDCodec, rec *storage.Record) []byte {
	if f == formatSSE {
		return appendSSEEvent(b, ids, rec)
	}
	return appendWSEvent(b, ids, rec)
}

// appendReset appends the reset message of format f: oldest is the oldest
// retained id, since the time the replay starts from when it does not
// start there (zero otherwise).
func (f format) appendReset(b []byte, oldest string, since time.Time) []byte {
	if f == formatSSE {
		return appendSSEReset(b, oldest, since)
	}
	return appendWSReset(b, oldest, since)
}

// ping returns the heartbeat bytes of format f.
func (f format) ping() []byte {
	if f == formatSSE {
		return ssePing
	}
	return wsPing
}
