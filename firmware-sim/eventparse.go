package firmwaresim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrBadStreamMessage is wrapped by parseWSMessage errors.
var ErrBadStreamMessage = errors.New("bad watcher message from hub")

// eventKind is the kind of a watcher event, as far as the
// watchers care.
type eventKind uint8

const (
	kindOther     eventKind = iota // presence, error, or a kind this simulator does not know
	kindTelemetry                  // event: telemetry
	kindReset                      // event: reset (SSE only; WebSocket has op reset)
)

// kindOf returns the kind named by an SSE event field or a WebSocket
// event's "event" member.
func kindOf(name []byte) eventKind {
	switch string(name) {
	case "telemetry":
		return kindTelemetry
	case "reset":
		return kindReset
	}
	return kindOther
}

// tsKey opens the "ts" member of an event's data. Inside a JSON string a
// quote is always escaped, so these bytes only ever start the member.
var tsKey = []byte(`"ts":"`)

// dataMillis returns the Unix milliseconds of the "ts" member of an
// event's data object, without decoding the rest of it.
func dataMillis(data []byte) (int64, bool) {
	i := bytes.Index(data, tsKey)
	if i < 0 {
		return 0, false
	}
	rest := data[i+len(tsKey):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return 0, false
	}
	return parseMillis(rest[:end])
}

// parseMillis returns the Unix milliseconds of an RFC 3339 time. The form
// the hub writes, 2006-01-02T15:04:05.000Z, is read without allocating;
// any other goes through time.Parse.
func parseMillis(b []byte) (int64, bool) {
	if ms, ok := fastMillis(b); ok {
		return ms, true
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return 0, false
	}
	return t.UnixMilli(), true
}

// fastMillis reads exactly YYYY-MM-DDTHH:MM:SS.mmmZ.
func fastMillis(b []byte) (int64, bool) {
	const layout = "dddd-dd-ddTdd:dd:dd.dddZ"
	if len(b) != len(layout) {
		return 0, false
	}
	for i := range len(layout) {
		isDigit := b[i] >= '0' && b[i] <= '9'
		if (layout[i] == 'd') != isDigit || (!isDigit && b[i] != layout[i]) {
			return 0, false
		}
	}
	num := func(i, n int) int64 {
		var v int64
		for _, c := range b[i : i+n] {
			v = v*10 + int64(c-'0')
		}
		return v
	}
	year, month, day := num(0, 4), num(5, 2), num(8, 2)
	hour, minute, sec, milli := num(11, 2), num(14, 2), num(17, 2), num(20, 3)
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	days := daysFromCivil(year, month, day)
	return ((days*24+hour)*60+minute)*60000 + sec*1000 + milli, true
}

// daysIn returns the number of days of month in year (proleptic Gregorian).
func daysIn(year, month int64) int64 {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the days from 1970-01-01 to a date of a year from
// 0 to 9999 (H. Hinnant's algorithm).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// wsOp is the op of a message the hub sends a WebSocket watcher.
type wsOp uint8

const (
	wsOpOther      wsOp = iota // unsubscribed, or an op this simulator does not know
	wsOpEvent                  // {"op":"event",…}
	wsOpSubscribed             // {"op":"subscribed",…}
	wsOpReset                  // {"op":"reset","oldest":…}
	wsOpError                  // {"op":"error","message":…}
)

// wsMessage is a parsed hub → watcher WebSocket message. ID and Message
// may point into the parsed bytes: copy them before the bytes go.
type wsMessage struct {
	Op      wsOp
	ID      []byte
	Kind    eventKind
	TS      int64 // Unix ms of the event's data "ts"
	HasTS   bool
	Message string // of an error
}

// The hub's event message: {"op":"event","id":"<id>","event":"<kind>","data":<data>}.
var (
	wsEventPrefix = []byte(`{"op":"event","id":"`)
	wsEventKind   = []byte(`","event":"`)
	wsEventData   = []byte(`","data":`)
)

// parseWSMessage parses one text message of the hub's watcher WebSocket.
// Events in the hub's own member order are read without
// decoding their data; anything else is decoded as JSON.
func parseWSMessage(b []byte) (wsMessage, error) {
	if m, ok := parseFastEvent(b); ok {
		return m, nil
	}
	var raw struct {
		Op      string          `json:"op"`
		ID      string          `json:"id"`
		Event   string          `json:"event"`
		Data    json.RawMessage `json:"data"`
		Message string          `json:"message"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return wsMessage{}, fmt.Errorf("%w: %w", ErrBadStreamMessage, err)
	}
	m := wsMessage{Message: raw.Message}
	switch raw.Op {
	case "event":
		m.Op, m.ID, m.Kind = wsOpEvent, []byte(raw.ID), kindOf([]byte(raw.Event))
		m.TS, m.HasTS = dataMillis(raw.Data)
	case "subscribed":
		m.Op = wsOpSubscribed
	case "reset":
		m.Op = wsOpReset
	case "error":
		m.Op = wsOpError
	}
	return m, nil
}

// plainString reports whether b is the inside of a JSON string that needs
// no unescaping: no quote, no backslash, no control character.
func plainString(b []byte) bool {
	for _, c := range b {
		if c == '"' || c == '\\' || c < 0x20 {
			return false
		}
	}
	return true
}

// parseFastEvent reads an event message in the hub's member order whose id
// and kind need no unescaping.
func parseFastEvent(b []byte) (wsMessage, bool) {
	rest, ok := bytes.CutPrefix(b, wsEventPrefix)
	if !ok {
		return wsMessage{}, false
	}
	id, rest, ok := bytes.Cut(rest, wsEventKind)
	if !ok || !plainString(id) {
		return wsMessage{}, false
	}
	kind, data, ok := bytes.Cut(rest, wsEventData)
	if !ok || !plainString(kind) {
		return wsMessage{}, false
	}
	data, ok = bytes.CutSuffix(data, []byte("}"))
	if !ok || len(data) == 0 {
		return wsMessage{}, false
	}
	m := wsMessage{Op: wsOpEvent, ID: id, Kind: kindOf(kind)}
	m.TS, m.HasTS = dataMillis(data)
	return m, true
}
