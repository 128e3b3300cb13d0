package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/telehub/telehub/bridge"
)

// putID appends the 8-byte big-endian key of event id to b.
func putID(b []byte, id uint64) []byte { return binary.BigEndian.AppendUint64(b, id) }

// getID decodes an 8-byte big-endian event key.
func getID(k []byte) uint64 { return binary.BigEndian.Uint64(k) }

// Event values are, in order: the kind (1 byte), Record.Time in unix
// milliseconds (signed varint), the topic length (uvarint), the topic, and
// the data (the rest).

// appendEvent appends the encoded event to b.
func appendEvent(b []byte, kind bridge.Kind, ms int64, topic string, data []byte) []byte {
	b = append(b, byte(kind))
	b = binary.AppendVarint(b, ms)
	b = binary.AppendUvarint(b, uint64(len(topic)))
	b = append(b, topic...)
	return append(b, data...)
}

// Records of the event log hold all events of one bridge.Write, stored
// under the id of its first event; the others follow with consecutive ids.
// A record is, in order: the number of events (uvarint, at least one), then
// each event's encoding (see appendEvent) with its uvarint length.

// appendRecordEvent appends one encoded event, with its length, to the
// record being built in b; scratch is reused for the encoding and returned.
func appendRecordEvent(b, scratch []byte, kind bridge.Kind, ms int64, topic string, data []byte) (rec, buf []byte) {
	scratch = appendEvent(scratch[:0], kind, ms, topic, data)
	return appendBytes(b, scratch), scratch
}

// appendRecord appends a record holding the encoded events evs to b.
func appendRecord(b []byte, evs [][]byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(evs)))
	for _, ev := range evs {
		b = appendBytes(b, ev)
	}
	return b
}

// decodeRecord splits a record into its encoded events, appended to evs;
// they alias v.
func decodeRecord(evs [][]byte, v []byte) ([][]byte, error) {
	d := decoder{b: v}
	n := d.uvarint()
	switch {
	case d.err != nil:
	case n == 0:
		d.err = errors.New("no events")
	case n > uint64(len(d.b)):
		// Each event takes at least one byte: checking first bounds the
		// allocation.
		d.err = fmt.Errorf("%d events in %d bytes", n, len(d.b))
	}
	if d.err == nil {
		evs = slices.Grow(evs, int(n))
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		evs = append(evs, d.bytes())
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return evs[:0], fmt.Errorf("%w: record: %w", ErrCorrupt, d.err)
	}
	return evs, nil
}

// recordLen returns the number of events of a record, reading only its
// count.
func recordLen(v []byte) (uint64, error) {
	d := decoder{b: v}
	n := d.uvarint()
	if d.err == nil && n == 0 {
		d.err = errors.New("no events")
	}
	if d.err != nil {
		return 0, fmt.Errorf("%w: record: %w", ErrCorrupt, d.err)
	}
	return n, nil
}

// recordTime returns Record.Time of the first event of a record, in unix
// milliseconds.
func recordTime(v []byte) (int64, error) {
	d := decoder{b: v}
	if d.uvarint(); d.err == nil {
		ms, err := eventTime(d.bytes())
		if d.err == nil {
			return ms, err
		}
	}
	return 0, fmt.Errorf("%w: record: %w", ErrCorrupt, d.err)
}

// eventFields is an encoded event split into its parts; topic and data
// alias the encoded bytes.
type eventFields struct {
	kind  bridge.Kind
	ms    int64
	topic []byte
	data  []byte
}

// decodeEvent splits an encoded event into its parts.
func decodeEvent(v []byte) (eventFields, error) {
	if len(v) < 1 {
		return eventFields{}, fmt.Errorf("%w: empty event", ErrCorrupt)
	}
	f := eventFields{kind: bridge.Kind(v[0])}
	d := decoder{b: v[1:]}
	f.ms = d.varint()
	f.topic = d.bytes()
	if d.err != nil {
		return eventFields{}, fmt.Errorf("%w: event: %w", ErrCorrupt, d.err)
	}
	f.data = d.b
	return f, nil
}

// eventTime returns Record.Time of an encoded event, in unix milliseconds.
func eventTime(v []byte) (int64, error) {
	if len(v) < 1 {
		return 0, fmt.Errorf("%w: empty event", ErrCorrupt)
	}
	d := decoder{b: v[1:]}
	ms := d.varint()
	if d.err != nil {
		return 0, fmt.Errorf("%w: event time: %w", ErrCorrupt, d.err)
	}
	return ms, nil
}

// deviceRec is the stored record of one device.
type deviceRec struct {
	transport string
	online    bool
	hasSeq    bool
	session   uint64
	seq       uint64 // last stored device seq, when hasSeq
	firstMs   int64  // first seen, unix ms
	lastMs    int64  // last seen, unix ms
	metrics   []string

	// The seq epoch (see seqVerdict): its boot, and the device time of the
	// last stored write with a seq, when hasTS.
	boot    string
	hasTS   bool
	tsMicro int64 // unix microseconds
	// ranges are the seqs stored in the epoch; the highest is seq.
	ranges seqRanges

	duplicates uint64 // writes acknowledged as duplicates
	restarts   uint64 // seq epochs started after the first
}

// Flags of an encoded device record.
const (
	devOnline byte = 1 << iota
	devHasSeq
	devHasTS
)

// Device records are, in order: flags (1 byte), session, seq (uvarints),
// first and last seen (varints, unix ms), transport (uvarint length and
// bytes), the number of metrics (uvarint), then each metric name (uvarint
// length and bytes), sorted; then the epoch part: duplicates, restarts
// (uvarints), the epoch's device time (varint, unix µs) and boot (uvarint
// length and bytes); then, for a device with a seq, the epoch's stored seq
// ranges (appendSeqRanges, at least one range).
// Records written before the epoch part existed end after the metrics and
// read as zero counts and no epoch. Records written before the ranges
// existed end after the boot; with a seq, they read as every seq up to it
// stored, which is what their dedup assumed.

// appendDevice appends the encoded record to b.
func appendDevice(b []byte, r *deviceRec) []byte {
	var flags byte
	if r.online {
		flags |= devOnline
	}
	if r.hasSeq {
		flags |= devHasSeq
	}
	if r.hasTS {
		flags |= devHasTS
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, r.session)
	b = binary.AppendUvarint(b, r.seq)
	b = binary.AppendVarint(b, r.firstMs)
	b = binary.AppendVarint(b, r.lastMs)
	b = appendString(b, r.transport)
	b = binary.AppendUvarint(b, uint64(len(r.metrics)))
	for _, m := range r.metrics {
		b = appendString(b, m)
	}
	b = binary.AppendUvarint(b, r.duplicates)
	b = binary.AppendUvarint(b, r.restarts)
	b = binary.AppendVarint(b, r.tsMicro)
	b = appendString(b, r.boot)
	if len(r.ranges) == 0 {
		return b
	}
	return appendSeqRanges(b, r.ranges)
}

// decodeDevice decodes a record written by appendDevice. The strings are
// copies: the record outlives the transaction.
func decodeDevice(v []byte) (deviceRec, error) {
	if len(v) < 1 {
		return deviceRec{}, fmt.Errorf("%w: empty device record", ErrCorrupt)
	}
	r := deviceRec{online: v[0]&devOnline != 0, hasSeq: v[0]&devHasSeq != 0, hasTS: v[0]&devHasTS != 0}
	d := decoder{b: v[1:]}
	r.session = d.uvarint()
	r.seq = d.uvarint()
	r.firstMs = d.varint()
	r.lastMs = d.varint()
	r.transport = string(d.bytes())
	r.metrics = d.strings()
	if d.err == nil && len(d.b) != 0 {
		r.duplicates = d.uvarint()
		r.restarts = d.uvarint()
		r.tsMicro = d.varint()
		r.boot = string(d.bytes())
	}
	r.ranges = decodeDeviceRanges(&d, &r)
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return deviceRec{}, fmt.Errorf("%w: device record: %w", ErrCorrupt, d.err)
	}
	return r, nil
}

// decodeDeviceRanges reads the epoch's seq ranges of r, when the record
// has them, and checks that their highest seq is r's last one.
func decodeDeviceRanges(d *decoder, r *deviceRec) seqRanges {
	if d.err != nil {
		return nil
	}
	if len(d.b) == 0 {
		if !r.hasSeq {
			return nil
		}
		return seqRanges{{0, r.seq}}
	}
	rs := d.seqRanges()
	if d.err != nil {
		return nil
	}
	if !r.hasSeq || len(rs) == 0 || rs[len(rs)-1].hi != r.seq {
		d.err = fmt.Errorf("%w: they do not end at the last seq %d", errSeqRanges, r.seq)
		return nil
	}
	return rs
}

// appendBytes appends v with its uvarint length.
func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// appendString appends s with its uvarint length.
func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// stateKey appends the state bucket key of device and metric to b: the
// device's uvarint length, the device, then the metric. All metrics of a
// device share the prefix stateKey(b, device, "").
func stateKey(b []byte, device, metric string) []byte {
	return append(appendString(b, device), metric...)
}

// errBadVarint: a varint is truncated or overflows 64 bits.
var errBadVarint = errors.New("bad varint")

// decoder reads the parts of an encoded value; the first error sticks and
// later reads return zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errBadVarint
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errBadVarint
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes reads a uvarint length and that many bytes; the result aliases d.b.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("length %d over the %d bytes left", n, len(d.b))
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// strings reads a uvarint count and that many length-prefixed strings.
func (d *decoder) strings() []string {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	// Each string takes at least one byte: a count above that is corrupt,
	// and checking it first bounds the allocation.
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("%d strings in %d bytes", n, len(d.b))
		return nil
	}
	out := make([]string, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		out = append(out, string(d.bytes()))
	}
	if d.err != nil {
		return nil
	}
	return out
}
