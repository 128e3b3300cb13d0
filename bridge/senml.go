package bridge

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/telehub/telehub/internal/jsonx"
	"github.com/telehub/telehub/internal/topic"
)

// SenML (RFC 8428) rules as telehub applies them:
//
//   - the pack is a JSON array of record objects;
//   - base fields (bn, bt, bu, bv, bver) apply to their own record and to
//     every following one until changed, whatever the key order inside the
//     record;
//   - the metric name is bn + n and must pass topic.ValidMetric; the device is
//     always the one of the topic or connection, never taken from bn;
//   - the time is bt + t in seconds; a sum below 2^28 is relative to now
//     (negative is in the past); a record with neither has no device time;
//   - the unit is u, else bu;
//   - each record has exactly one value: v (plus bv), vs or vb. Data values
//     (vd) and sum-only records (s) are not supported and rejected;
//   - bver above 10 is rejected; ut and bs are read and ignored;
//   - unknown fields ending in '_' (must-understand, RFC 8428 §4.4) are
//     rejected, other unknown fields are ignored.

// relativeTimeLimit is 2^28 seconds: SenML times below it are relative to
// now (RFC 8428 §4.5.3).
const relativeTimeLimit = 1 << 28

// senmlVersion is the highest SenML version understood (RFC 8428).
const senmlVersion = 10

// senmlBase holds the base fields in force.
type senmlBase struct {
	name    string
	time    float64
	hasTime bool
	unit    string
	value   float64
}

// senmlRecord is one record as read, before base fields are applied.
type senmlRecord struct {
	index int // 1-based, for messages
	seen  uint32

	bn, bu        string
	bt, bv        float64
	name, unit    string
	t             float64
	value         Value
	values        int // how many of v, vs, vb the record has
	hasSum, hasVD bool
	hasBN, hasBU  bool
	hasBT, hasBV  bool
	hasT, hasUnit bool
}

// errf returns an *Error naming the record.
func (rec *senmlRecord) errf(format string, args ...any) *Error {
	return &Error{
		Code:    CodeBadRequest,
		Message: "senml record " + strconv.Itoa(rec.index) + ": " + fmt.Sprintf(format, args...),
	}
}

// senmlPack resolves records against a clock read at most once per pack.
type senmlPack struct {
	base   senmlBase
	now    func() time.Time
	nowT   time.Time
	hasNow bool
}

// senml reads a SenML pack, appending its readings to rs.
func (r *reader) senml(now func() time.Time, rs []Reading) ([]Reading, error) {
	if r.peek() != '[' {
		if err := r.skip(0); err != nil {
			return nil, err
		}
		return nil, Errorf("senml: must be an array of records")
	}
	r.pos++
	pack := senmlPack{now: now}
	for i, first := 1, true; ; i, first = i+1, false {
		more, err := r.more(']', first)
		if err != nil {
			return nil, err
		}
		if !more {
			return rs, nil
		}
		rec := senmlRecord{index: i}
		if err := r.senmlRecord(&rec); err != nil {
			return nil, err
		}
		rd, err := pack.resolve(&rec)
		if err != nil {
			return nil, err
		}
		rs = append(rs, rd)
	}
}

// senmlRecord reads one record object.
func (r *reader) senmlRecord(rec *senmlRecord) error {
	if r.peek() != '{' {
		if err := r.skip(0); err != nil {
			return err
		}
		return rec.errf("must be an object")
	}
	r.pos++
	for first := true; ; first = false {
		more, err := r.more('}', first)
		if err != nil || !more {
			return err
		}
		key, err := r.key()
		if err != nil {
			return err
		}
		if err := r.senmlField(rec, key); err != nil {
			return err
		}
	}
}

// senmlKnown is a known record field: its name and its bit for duplicate
// detection.
type senmlKnown struct {
	name string
	bit  uint32
}

// senmlFields are the record fields of RFC 8428. Read only.
var senmlFields = map[string]senmlKnown{
	"bn": {"bn", 1 << 0}, "bt": {"bt", 1 << 1}, "bu": {"bu", 1 << 2}, "bv": {"bv", 1 << 3},
	"bs": {"bs", 1 << 4}, "bver": {"bver", 1 << 5}, "n": {"n", 1 << 6}, "u": {"u", 1 << 7},
	"v": {"v", 1 << 8}, "vs": {"vs", 1 << 9}, "vb": {"vb", 1 << 10}, "vd": {"vd", 1 << 11},
	"s": {"s", 1 << 12}, "t": {"t", 1 << 13}, "ut": {"ut", 1 << 14},
}

// senmlField reads the value of field key of a record.
func (r *reader) senmlField(rec *senmlRecord, key []byte) error {
	f, known := senmlFields[string(key)]
	name, bit := f.name, f.bit
	if !known {
		if len(key) > 0 && key[len(key)-1] == '_' {
			return rec.errf("field %s: must-understand field not supported", jsonx.Quote(string(key)))
		}
		return r.skip(0)
	}
	if rec.seen&bit != 0 {
		return rec.errf("duplicate field %q", name)
	}
	rec.seen |= bit
	switch name {
	case "bn", "bu", "n", "u", "vs", "vd":
		return r.senmlString(rec, name)
	case "vb":
		return r.senmlBool(rec)
	case "bver":
		return r.senmlVersion(rec)
	}
	return r.senmlNumber(rec, name)
}

// senmlString reads a string field.
func (r *reader) senmlString(rec *senmlRecord, key string) error {
	if r.peek() != '"' {
		if err := r.skip(0); err != nil {
			return err
		}
		return rec.errf("%s: must be a string", key)
	}
	b, err := r.str()
	if err != nil {
		return err
	}
	s := string(b)
	switch key {
	case "bn":
		rec.bn, rec.hasBN = s, true
	case "bu":
		rec.bu, rec.hasBU = s, true
	case "n":
		rec.name = s
	case "u":
		rec.unit, rec.hasUnit = s, true
	case "vs":
		rec.value = StringValue(s)
		rec.values++
	case "vd":
		rec.hasVD = true
	}
	return nil
}

// senmlBool reads the vb field.
func (r *reader) senmlBool(rec *senmlRecord) error {
	switch r.peek() {
	case 't':
		rec.value = BoolValue(true)
	case 'f':
		rec.value = BoolValue(false)
	default:
		if err := r.skip(0); err != nil {
			return err
		}
		return rec.errf("vb: must be true or false")
	}
	rec.values++
	return r.skip(0)
}

// senmlVersion reads the bver field: a positive integer up to 10.
func (r *reader) senmlVersion(rec *senmlRecord) error {
	f, err := r.senmlFloat(rec, "bver")
	if err != nil {
		return err
	}
	if f < 1 || f != math.Trunc(f) {
		return rec.errf("bver: must be a positive integer")
	}
	if f > senmlVersion {
		return rec.errf("bver: version %s not supported (up to %d)", strconv.FormatFloat(f, 'g', -1, 64), senmlVersion)
	}
	return nil
}

// senmlNumber reads a numeric field: bt, bv, bs, v, s, t or ut.
func (r *reader) senmlNumber(rec *senmlRecord, key string) error {
	f, err := r.senmlFloat(rec, key)
	if err != nil {
		return err
	}
	switch key {
	case "bt":
		rec.bt, rec.hasBT = f, true
	case "bv":
		rec.bv, rec.hasBV = f, true
	case "v":
		rec.value = NumberValue(f)
		rec.values++
	case "s":
		rec.hasSum = true
	case "t":
		rec.t, rec.hasT = f, true
	}
	return nil
}

// senmlFloat reads a JSON number for field key.
func (r *reader) senmlFloat(rec *senmlRecord, key string) (float64, error) {
	if c := r.peek(); c != '-' && !isDigit(c) {
		if err := r.skip(0); err != nil {
			return 0, err
		}
		return 0, rec.errf("%s: must be a number", key)
	}
	text, _, err := r.number()
	if err != nil {
		return 0, err
	}
	f, ok := parseFloat(text)
	if !ok {
		return 0, rec.errf("%s: number out of range", key)
	}
	return f, nil
}

// resolve applies the record's base fields to the pack, then the pack's base
// fields to the record, and returns its reading.
func (p *senmlPack) resolve(rec *senmlRecord) (Reading, error) {
	p.applyBase(rec)
	name := p.base.name + rec.name
	if err := topic.ValidMetric(name); err != nil {
		return Reading{}, rec.errf("%v", err)
	}
	v, err := p.resolveValue(rec)
	if err != nil {
		return Reading{}, err
	}
	rd := Reading{Metric: name, Value: v, Unit: p.base.unit}
	if rec.hasUnit {
		rd.Unit = rec.unit
	}
	if rec.hasT || p.base.hasTime {
		if rd.Time, err = p.resolveTime(rec); err != nil {
			return Reading{}, err
		}
	}
	return rd, nil
}

// applyBase updates the base fields in force with those of rec.
func (p *senmlPack) applyBase(rec *senmlRecord) {
	if rec.hasBN {
		p.base.name = rec.bn
	}
	if rec.hasBT {
		p.base.time, p.base.hasTime = rec.bt, true
	}
	if rec.hasBU {
		p.base.unit = rec.bu
	}
	if rec.hasBV {
		p.base.value = rec.bv
	}
}

// resolveValue returns the record's one value, with bv added to v.
func (p *senmlPack) resolveValue(rec *senmlRecord) (Value, error) {
	switch {
	case rec.values > 1:
		return Value{}, rec.errf("more than one value (v, vs, vb)")
	case rec.values == 0 && rec.hasVD:
		return Value{}, rec.errf("data values (vd) are not supported")
	case rec.values == 0 && rec.hasSum:
		return Value{}, rec.errf("sums (s) are not supported")
	case rec.values == 0:
		return Value{}, rec.errf("no value (v, vs or vb)")
	}
	v := rec.value
	if v.Kind == Number {
		v.Num += p.base.value
		if math.IsInf(v.Num, 0) {
			return Value{}, rec.errf("v: number out of range")
		}
	}
	return v, nil
}

// resolveTime returns the record's time bt + t, relative to now below 2^28.
func (p *senmlPack) resolveTime(rec *senmlRecord) (time.Time, error) {
	sec := p.base.time + rec.t
	if sec < relativeTimeLimit {
		if sec < -maxUnixSeconds {
			return time.Time{}, rec.errf("t: out of range")
		}
		if !p.hasNow {
			p.nowT, p.hasNow = p.now(), true
		}
		sec += float64(p.nowT.UnixNano()) / 1e9
	}
	if math.IsNaN(sec) || sec < 0 || sec > maxUnixSeconds {
		return time.Time{}, rec.errf("t: out of range")
	}
	whole, frac := math.Modf(sec)
	return time.Unix(int64(whole), int64(math.Round(frac*1e6))*1e3).UTC(), nil
}
