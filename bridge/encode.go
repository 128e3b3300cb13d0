package bridge

import (
	"math"
	"strconv"
	"time"

	"github.com/telehub/telehub/internal/jsonx"
)

// timeLayout is the form of every time telehub sends: RFC 3339, UTC, with
// exactly three decimals, e.g. 2026-11-25T10:00:00.123Z.
const timeLayout = "2006-01-02T15:04:05.000Z"

// FormatTime returns t in UTC as RFC 3339 with exactly three decimals
// (milliseconds, truncated), e.g. "2026-11-25T10:00:00.123Z": the form of
// every "ts" and "last_seen" telehub sends.
func FormatTime(t time.Time) string { return string(AppendTime(nil, t)) }

// AppendTime appends FormatTime(t) to b.
func AppendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, timeLayout)
	}
	hour, minute, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond()/1e6, 3)
	return append(b, 'Z')
}

// appendDigits appends the n lowest decimal digits of v, zero-padded.
func appendDigits(b []byte, v, n int) []byte {
	var tmp [4]byte
	for i := n - 1; i >= 0; i-- {
		tmp[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, tmp[:n]...)
}

// ErrorAnswer returns the JSON answer to a rejected MQTT payload, published
// on devices/{id}/errors: {"code":…,"message":…,"topic":…}, where
// topic is the topic the device published to.
func ErrorAnswer(code, message, topic string) []byte {
	b := make([]byte, 0, 40+len(code)+len(message)+len(topic))
	b = append(b, `{"code":`...)
	b = jsonx.AppendString(b, code)
	b = append(b, `,"message":`...)
	b = jsonx.AppendString(b, message)
	b = append(b, `,"topic":`...)
	b = jsonx.AppendString(b, topic)
	return append(b, '}')
}

// appendFloat appends f as encoding/json does (ES6 number form). f must be
// finite.
func appendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 becomes e-9, as in encoding/json
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendValue appends v as a JSON value.
func appendValue(b []byte, v Value) []byte {
	switch v.Kind {
	case Number:
		return appendFloat(b, v.Num)
	case String:
		return jsonx.AppendString(b, v.Str)
	case Bool:
		return strconv.AppendBool(b, v.Bool)
	}
	return append(b, "null"...)
}

// appendTS appends ,"ts":"<ts>" where ts is a formatted time.
func appendTS(b, ts []byte) []byte {
	b = append(b, `,"ts":"`...)
	b = append(b, ts...)
	return append(b, '"')
}

// appendTelemetryData appends the SSE data object of a telemetry event.
func appendTelemetryData(b []byte, topic []byte, device string, rd *Reading, ts []byte, p *Payload) []byte {
	b = append(b, `{"topic":`...)
	b = jsonx.AppendString(b, topic)
	b = append(b, `,"device":`...)
	b = jsonx.AppendString(b, device)
	b = append(b, `,"metric":`...)
	b = jsonx.AppendString(b, rd.Metric)
	b = append(b, `,"value":`...)
	b = appendValue(b, rd.Value)
	if rd.Unit != "" {
		b = append(b, `,"unit":`...)
		b = jsonx.AppendString(b, rd.Unit)
	}
	b = appendTS(b, ts)
	if p.HasSeq {
		b = append(b, `,"device_seq":`...)
		b = strconv.AppendUint(b, p.Seq, 10)
	}
	if p.Boot != "" {
		b = append(b, `,"device_boot":`...)
		b = jsonx.AppendString(b, p.Boot)
	}
	return append(b, '}')
}

// appendState appends the latest-state object of a reading,
// {"value":…,"unit":…,"ts":…}.
func appendState(b []byte, rd *Reading, ts []byte) []byte {
	b = append(b, `{"value":`...)
	b = appendValue(b, rd.Value)
	if rd.Unit != "" {
		b = append(b, `,"unit":`...)
		b = jsonx.AppendString(b, rd.Unit)
	}
	b = appendTS(b, ts)
	return append(b, '}')
}

// presenceData returns the data object of a presence event.
func presenceData(topic, device string, p *Presence, at time.Time) []byte {
	b := make([]byte, 0, 128+len(topic)+len(device))
	b = append(b, `{"topic":`...)
	b = jsonx.AppendString(b, topic)
	b = append(b, `,"device":`...)
	b = jsonx.AppendString(b, device)
	b = p.AppendMembers(append(b, ','))
	b = append(b, `,"ts":"`...)
	b = AppendTime(b, at)
	return append(b, `"}`...)
}

// AppendMembers appends p's members as JSON object members, without
// braces: "online", "transport", "reason" and "session", in that order.
func (p *Presence) AppendMembers(b []byte) []byte {
	b = append(b, `"online":`...)
	b = strconv.AppendBool(b, p.Online)
	b = append(b, `,"transport":`...)
	b = jsonx.AppendString(b, p.Transport)
	b = append(b, `,"reason":`...)
	b = jsonx.AppendString(b, p.Reason)
	b = append(b, `,"session":`...)
	return strconv.AppendUint(b, p.Session, 10)
}

// errorData is what an errors/{device} event says.
type errorData struct {
	topic, device, code, message, source string
	suppressed                           uint64
	at                                   time.Time
}

// encode returns the data object of an error event.
func (e *errorData) encode() []byte {
	b := make([]byte, 0, 160+len(e.topic)+len(e.device)+len(e.message)+len(e.source))
	b = append(b, `{"topic":`...)
	b = jsonx.AppendString(b, e.topic)
	b = append(b, `,"device":`...)
	b = jsonx.AppendString(b, e.device)
	b = append(b, `,"code":`...)
	b = jsonx.AppendString(b, e.code)
	b = append(b, `,"message":`...)
	b = jsonx.AppendString(b, e.message)
	b = append(b, `,"source_topic":`...)
	b = jsonx.AppendString(b, e.source)
	b = append(b, `,"suppressed":`...)
	b = strconv.AppendUint(b, e.suppressed, 10)
	b = append(b, `,"ts":"`...)
	b = AppendTime(b, e.at)
	return append(b, `"}`...)
}
