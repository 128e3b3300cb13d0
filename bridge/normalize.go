package bridge

import (
	"bytes"
	"math"
	"time"

	"github.com/telehub/telehub/internal/jsonx"
)

// Limits of device times: from the Unix epoch to the end of year 9999, so
// that every accepted time has the RFC 3339 form of FormatTime.
const (
	maxUnixSeconds = 253402300799
	maxUnixMillis  = maxUnixSeconds*1000 + 999
)

// Messages naming a wrong ts, seq or boot.
const (
	msgTS   = "must be unix milliseconds or an RFC 3339 string"
	msgSeq  = "must be an integer from 0 to 18446744073709551615"
	msgBoot = "must be a string of 1 to 64 bytes"
)

// MaxBoot is the longest boot value a device may send, in bytes.
const MaxBoot = 64

// ParseTelemetry parses the payload of an MQTT devices/{id}/telemetry
// message. It accepts three forms:
//
//   - a flat JSON object of metric → value, with the reserved keys "ts"
//     (unix milliseconds or an RFC 3339 string), "seq" (an integer from 0
//     to 2^64-1) and "boot" (a string of 1 to 64 bytes naming the seq
//     epoch), e.g. {"temp":21.5,"door":"open","ts":1764064800000};
//   - the wrapped form {"ts":…,"seq":…,"boot":…,"values":{metric → value}}; a key
//     "values" always selects it, and then no metric may sit next to it;
//   - a SenML pack (RFC 8428), see the senml.go rules: names bn+n, times
//     bt+t in seconds (relative to now below 2^28), units bu/u, values
//     v (plus bv), vs, vb.
//
// Values are numbers, strings or booleans; null, nested objects and arrays
// are rejected, as are duplicate keys. Any invalid part rejects the whole
// payload with an *Error (CodeBadRequest) whose message names the part. A
// payload without any reading is rejected. Readings carry the payload's ts
// (or their SenML time); Time is zero when the device sent none.
func ParseTelemetry(payload []byte) (Payload, error) {
	return parseTelemetry(payload, time.Now)
}

// parseTelemetry is ParseTelemetry with the clock for relative SenML times.
func parseTelemetry(payload []byte, now func() time.Time) (Payload, error) {
	r := reader{b: payload}
	var p Payload
	var err error
	switch c := r.peek(); {
	case r.atEnd():
		return Payload{}, Errorf("empty payload")
	case c == '{':
		p, err = r.telemetryObject(readingsFor(payload, ':'))
	case c == '[':
		p.Readings, err = r.senml(now, readingsFor(payload, '{'))
	default:
		return Payload{}, Errorf("payload must be a JSON object or a SenML array")
	}
	if err == nil {
		err = r.end()
	}
	if err == nil && len(p.Readings) == 0 {
		err = errNoReadings()
	}
	if err != nil {
		return Payload{}, err
	}
	return p, nil
}

// maxPrealloc bounds the readings preallocated for one payload.
const maxPrealloc = 256

// readingsFor returns an empty slice with room for about as many readings
// as the payload has bytes sep (':' per object member, '{' per SenML
// record), so that appends rarely grow it.
func readingsFor(payload []byte, sep byte) []Reading {
	return make([]Reading, 0, min(bytes.Count(payload, []byte{sep}), maxPrealloc))
}

func errNoReadings() *Error { return Errorf("no readings: the payload holds no metric value") }

// objectState collects a flat or wrapped telemetry object as it is read.
type objectState struct {
	p       Payload
	ts      time.Time
	seen    keySet
	flat    string // first metric outside "values", for the mixing error
	wrapped bool
}

// keySet records which reserved keys an object had, to reject duplicates.
type keySet uint8

const (
	keyTS keySet = 1 << iota
	keySeq
	keyValues
	keyType
	keySenML
	keyBoot
)

// add marks k seen, returning an error when it was seen before.
func (s *keySet) add(k keySet, name string) error {
	if *s&k != 0 {
		return Errorf("duplicate key %q", name)
	}
	*s |= k
	return nil
}

// telemetryObject reads a flat or wrapped telemetry object.
func (r *reader) telemetryObject(rs []Reading) (Payload, error) {
	r.pos++ // '{'
	st := objectState{p: Payload{Readings: rs}}
	for first := true; ; first = false {
		more, err := r.more('}', first)
		if err != nil {
			return Payload{}, err
		}
		if !more {
			break
		}
		key, err := r.key()
		if err != nil {
			return Payload{}, err
		}
		if err := r.telemetryMember(&st, key); err != nil {
			return Payload{}, err
		}
	}
	if st.wrapped && st.flat != "" {
		return Payload{}, Errorf(`metric %s: metrics go inside "values" in the wrapped form`, jsonx.Quote(st.flat))
	}
	st.p.Time = st.ts
	return st.p, finishReadings(st.p.Readings, st.ts)
}

// telemetryMember reads the value of one member of a telemetry object.
func (r *reader) telemetryMember(st *objectState, key []byte) error {
	var err error
	switch string(key) {
	case "ts":
		if err = st.seen.add(keyTS, "ts"); err == nil {
			st.ts, err = r.timestamp("ts")
		}
	case "seq":
		if err = st.seen.add(keySeq, "seq"); err == nil {
			st.p.Seq, err = r.seq()
			st.p.HasSeq = err == nil
		}
	case "boot":
		if err = st.seen.add(keyBoot, "boot"); err == nil {
			st.p.Boot, err = r.boot()
		}
	case "values":
		if err = st.seen.add(keyValues, "values"); err == nil {
			st.wrapped = true
			st.p.Readings, err = r.metrics(st.p.Readings)
		}
	default:
		if st.flat == "" {
			st.flat = string(key)
		}
		st.p.Readings, err = r.metric(st.p.Readings, key)
	}
	return err
}

// finishReadings gives ts to the readings without a time of their own and
// rejects a metric that appears twice.
func finishReadings(rs []Reading, ts time.Time) error {
	applyTime(rs, ts)
	if name, ok := duplicateMetric(rs); ok {
		return Errorf("metric %s: appears more than once", jsonx.Quote(name))
	}
	return nil
}

// applyTime gives ts to the readings without a time of their own.
func applyTime(rs []Reading, ts time.Time) {
	if ts.IsZero() {
		return
	}
	for i := range rs {
		if rs[i].Time.IsZero() {
			rs[i].Time = ts
		}
	}
}

// duplicateMetric returns a metric name that two readings share.
func duplicateMetric(rs []Reading) (string, bool) {
	if len(rs) <= 16 {
		for i := 1; i < len(rs); i++ {
			for j := 0; j < i; j++ {
				if rs[i].Metric == rs[j].Metric {
					return rs[i].Metric, true
				}
			}
		}
		return "", false
	}
	seen := make(map[string]struct{}, len(rs))
	for _, rd := range rs {
		if _, dup := seen[rd.Metric]; dup {
			return rd.Metric, true
		}
		seen[rd.Metric] = struct{}{}
	}
	return "", false
}

// metrics reads an object of metric → value (the "values" of the wrapped
// form and of frames), appending to rs.
func (r *reader) metrics(rs []Reading) ([]Reading, error) {
	if r.peek() != '{' {
		if err := r.skip(0); err != nil {
			return nil, err
		}
		return nil, Errorf("values: must be an object of metric values")
	}
	r.pos++
	for first := true; ; first = false {
		more, err := r.more('}', first)
		if err != nil || !more {
			return rs, err
		}
		key, err := r.key()
		if err != nil {
			return nil, err
		}
		if rs, err = r.metric(rs, key); err != nil {
			return nil, err
		}
	}
}

// metric validates the metric name key, reads its value and appends the
// reading.
func (r *reader) metric(rs []Reading, key []byte) ([]Reading, error) {
	name := string(key)
	if err := validMetric(name); err != nil {
		return nil, err
	}
	v, err := r.value(name)
	if err != nil {
		return nil, err
	}
	return append(rs, Reading{Metric: name, Value: v}), nil
}

// value reads the value of metric name: a number, a string or a boolean.
func (r *reader) value(name string) (Value, error) {
	switch r.peek() {
	case '"':
		s, err := r.str()
		return StringValue(string(s)), err
	case 't':
		return BoolValue(true), r.literal("true")
	case 'f':
		return BoolValue(false), r.literal("false")
	case 'n':
		if err := r.literal("null"); err != nil {
			return Value{}, err
		}
		return Value{}, Errorf("value of %s: null is not allowed", jsonx.Quote(name))
	case '{':
		return Value{}, Errorf("value of %s: nested objects are not allowed", jsonx.Quote(name))
	case '[':
		return Value{}, Errorf("value of %s: arrays are not allowed", jsonx.Quote(name))
	}
	text, _, err := r.number()
	if err != nil {
		return Value{}, err
	}
	f, ok := parseFloat(text)
	if !ok {
		return Value{}, Errorf("value of %s: number out of range", jsonx.Quote(name))
	}
	return NumberValue(f), nil
}

// timestamp reads a device time: unix milliseconds (a number, possibly with
// a fraction) or an RFC 3339 string. field names it in errors.
func (r *reader) timestamp(field string) (time.Time, error) {
	switch c := r.peek(); {
	case c == '"':
		s, err := r.str()
		if err != nil {
			return time.Time{}, err
		}
		t, perr := time.Parse(time.RFC3339Nano, string(s))
		if perr != nil {
			return time.Time{}, Errorf("%s: %s", field, msgTS)
		}
		if sec := t.Unix(); sec < 0 || sec > maxUnixSeconds {
			return time.Time{}, Errorf("%s: out of range", field)
		}
		return t.UTC(), nil
	case c == '-' || isDigit(c):
		text, _, err := r.number()
		if err != nil {
			return time.Time{}, err
		}
		ms, ok := parseFloat(text)
		if !ok || ms < 0 || ms > maxUnixMillis {
			return time.Time{}, Errorf("%s: out of range", field)
		}
		return millisToTime(ms), nil
	}
	if err := r.skip(0); err != nil {
		return time.Time{}, err
	}
	return time.Time{}, Errorf("%s: %s", field, msgTS)
}

// millisToTime converts unix milliseconds to a UTC time, to the microsecond.
func millisToTime(ms float64) time.Time {
	whole, frac := math.Modf(ms)
	return time.UnixMilli(int64(whole)).Add(time.Duration(math.Round(frac*1e3)) * time.Microsecond).UTC()
}

// seq reads a device sequence number: a JSON integer from 0 to 2^64-1,
// without fraction or exponent.
func (r *reader) seq() (uint64, error) {
	if c := r.peek(); c != '-' && !isDigit(c) {
		if err := r.skip(0); err != nil {
			return 0, err
		}
		return 0, Errorf("seq: %s", msgSeq)
	}
	text, isInt, err := r.number()
	if err != nil {
		return 0, err
	}
	n, ok := parseUint(text)
	if !isInt || !ok {
		return 0, Errorf("seq: %s", msgSeq)
	}
	return n, nil
}

// boot reads a device boot value: a JSON string of 1 to MaxBoot bytes.
func (r *reader) boot() (string, error) {
	if r.peek() != '"' {
		if err := r.skip(0); err != nil {
			return "", err
		}
		return "", Errorf("boot: %s", msgBoot)
	}
	s, err := r.str()
	if err != nil {
		return "", err
	}
	if len(s) == 0 || len(s) > MaxBoot {
		return "", Errorf("boot: %s", msgBoot)
	}
	return string(s), nil
}
