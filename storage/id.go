package storage

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Errors of ParseID.
var (
	// ErrBadID: the string is not an event id at all.
	ErrBadID = errors.New("malformed event id")
	// ErrForeignID: the id was minted by another store (another hub or data
	// directory).
	ErrForeignID = errors.New("event id from another store")
)

// idDigits is the width of the sequence part: fixed, so that ids of one
// store also sort as strings.
const idDigits = 16

// timeDigits is the width of the time part of a timed id: unix
// milliseconds in hex, enough until the year 10889.
const timeDigits = 12

// maxIDMs is the largest time a timed id can carry, in unix ms.
const maxIDMs = 1<<(4*timeDigits) - 1

// IDCodec turns event sequence numbers into the opaque ids clients see,
// "<store identity>-<16 hex digits>", and back. The identity is made when a
// data file is created, so ids from another hub or data directory are told
// apart.
//
// A hub in a cluster uses a timed codec (InCluster): its ids end with
// "-<12 hex digits>", the event's Record.Time in unix milliseconds, so that
// a peer hub given one of them knows from when to replay its own events.
// The sequence part keeps its fixed width, so a hub's ids still increase
// as strings in commit order, whichever mode minted them.
type IDCodec struct {
	identity string
	timed    bool
	margin   time.Duration
}

// NewIDCodec returns a codec for the store with the given identity (letters
// and digits only). Its ids carry no time: a single hub's ids.
func NewIDCodec(identity string) IDCodec { return IDCodec{identity: identity} }

// InCluster returns the codec of the same identity for a hub of a cluster:
// its ids carry their event's time, and an id that another store minted
// with a time is a peer hub's, which PeerSince answers from its time minus
// margin (negative: 0).
func (c IDCodec) InCluster(margin time.Duration) IDCodec {
	return IDCodec{identity: c.identity, timed: true, margin: max(margin, 0)}
}

// Identity returns the store identity the codec was made with.
func (c IDCodec) Identity() string { return c.identity }

// Timed reports whether the codec's ids carry their event's time.
func (c IDCodec) Timed() bool { return c.timed }

// Len returns the length of every id the codec formats with FormatAt.
func (c IDCodec) Len() int {
	n := len(c.identity) + 1 + idDigits
	if c.timed {
		n += 1 + timeDigits
	}
	return n
}

// Format returns the id string of sequence number seq without a time: the
// id a single hub hands out. Parse accepts it from this store in either
// mode; ids handed to clients are formatted with FormatAt.
func (c IDCodec) Format(seq uint64) string {
	return string(c.AppendFormat(make([]byte, 0, len(c.identity)+1+idDigits), seq))
}

// AppendFormat appends the id string of seq without a time to b.
func (c IDCodec) AppendFormat(b []byte, seq uint64) []byte {
	b = append(b, c.identity...)
	b = append(b, '-')
	return appendHex(b, seq, idDigits)
}

// FormatAt returns the id of the event seq whose Record.Time is t: with
// the time when the codec is timed, as Format otherwise.
func (c IDCodec) FormatAt(seq uint64, t time.Time) string {
	return string(c.AppendFormatAt(make([]byte, 0, c.Len()), seq, t))
}

// AppendFormatAt appends the id of the event seq whose Record.Time is t to
// b. A time before 1970 is written as 1970, one past the year 10889 as
// that year's end, so that every id of a codec has the same length.
func (c IDCodec) AppendFormatAt(b []byte, seq uint64, t time.Time) []byte {
	b = c.AppendFormat(b, seq)
	if !c.timed {
		return b
	}
	ms := min(max(t.UnixMilli(), 0), maxIDMs)
	return appendHex(append(b, '-'), uint64(ms), timeDigits)
}

// appendHex appends v as exactly width lowercase hex digits.
func appendHex(b []byte, v uint64, width int) []byte {
	var tmp [idDigits]byte
	for i := width - 1; i >= 0; i-- {
		tmp[i] = "0123456789abcdef"[v&0xf]
		v >>= 4
	}
	return append(b, tmp[:width]...)
}

// Parse returns the sequence number of id: ErrBadID when it is not an id,
// ErrForeignID when another store minted it. An id of this store is
// accepted with or without a time, whatever the codec's mode.
func (c IDCodec) Parse(id string) (uint64, error) {
	p, err := ParseID(id)
	if err != nil {
		return 0, err
	}
	if p.Identity != c.identity {
		return 0, fmt.Errorf("%w: %q", ErrForeignID, id)
	}
	return p.Seq, nil
}

// PeerSince returns the time from which this hub replays its own events
// for id, and true, when id was minted by a peer hub of its cluster: the
// codec is timed (the hub is in a cluster) and id is a well-formed id of
// another store that carries a time. The time is the id's minus the
// codec's margin. Any other id returns false.
func (c IDCodec) PeerSince(id string) (time.Time, bool) {
	if !c.timed {
		return time.Time{}, false
	}
	p, err := ParseID(id)
	if err != nil || p.Identity == c.identity || p.Time.IsZero() {
		return time.Time{}, false
	}
	return p.Time.Add(-c.margin), true
}

// ParsedID is an event id split into its parts.
type ParsedID struct {
	// Identity is the identity of the store that minted the id.
	Identity string
	// Seq is the event's sequence number in that store.
	Seq uint64
	// Time is the event's Record.Time that a timed id carries, in
	// milliseconds, UTC; zero when the id carries none.
	Time time.Time
}

// ParseID splits any store's event id, "<identity>-<16 hex digits>" with
// an optional "-<12 hex digits>" time; anything else is ErrBadID.
func ParseID(id string) (ParsedID, error) {
	ident, rest, ok := strings.Cut(id, "-")
	if !ok || ident == "" {
		return ParsedID{}, fmt.Errorf("%w: %q", ErrBadID, id)
	}
	hex, ts, timed := strings.Cut(rest, "-")
	seq, ok := parseHex(hex, idDigits)
	if !ok {
		return ParsedID{}, fmt.Errorf("%w: %q", ErrBadID, id)
	}
	p := ParsedID{Identity: ident, Seq: seq}
	if timed {
		ms, ok := parseHex(ts, timeDigits)
		if !ok {
			return ParsedID{}, fmt.Errorf("%w: %q", ErrBadID, id)
		}
		p.Time = time.UnixMilli(int64(ms)).UTC()
	}
	return p, nil
}

// parseHex parses exactly width hex digits.
func parseHex(s string, width int) (uint64, bool) {
	if len(s) != width {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 16, 64)
	return v, err == nil
}
