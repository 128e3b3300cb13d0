package storage

import (
	"errors"
	"fmt"
	"time"
)

// ErrExpired is wrapped by a *GapError whose id is this store's but whose
// following events retention has dropped.
var ErrExpired = errors.New("event id no longer retained")

// ErrAhead is wrapped by a *GapError whose id is this store's but beyond
// the newest event the reader reads up to. The store minted it, and
// later lost it: its data directory was restored from an older copy, and
// the ids after that copy's newest are minted again, for other events.
var ErrAhead = errors.New("event id beyond the newest event")

// errNoProgress: the log's Scan returned without moving forward.
var errNoProgress = errors.New("log scan made no progress")

// Log is what reading after an id needs: *Store implements it, and so do
// the test doubles of its readers.
type Log interface {
	IDs() IDCodec
	LastID() uint64
	OldestID() (uint64, bool)
	// OldestEvent is OldestID with the event's Record.Time.
	OldestEvent() (uint64, time.Time, bool)
	// AfterTime returns the id to read after to get the retained events
	// of Record.Time t or later (see Store.AfterTime).
	AfterTime(t time.Time) (uint64, error)
	Scan(after, upTo uint64, match func(topic string) bool, limit int) (recs []Record, next uint64, err error)
}

var _ Log = (*Store)(nil)

// GapError says that reading cannot go on from an id without missing
// events: the id was minted by another store or data directory (Foreign;
// it wraps ErrForeignID), it is beyond the newest event (Ahead; it wraps
// ErrAhead), or events after it are no longer retained (it wraps
// ErrExpired). Readers start again from Oldest, or, when the id was
// minted by a peer hub of the cluster (Peer), after After.
type GapError struct {
	// ID is the id asked for as given, or formatted when the gap was found
	// while reading.
	ID string
	// Oldest is the oldest retained id, formatted, and OldestSeq its
	// sequence; "" and 0 when the log retains nothing.
	Oldest    string
	OldestSeq uint64
	Foreign   bool
	Ahead     bool
	// Since, for an id a peer hub of the cluster minted, is the time from
	// which this store's events are replayed instead: the id's time minus
	// the resume margin; After is the id to read after to get them. Since
	// is zero for any other gap.
	Since time.Time
	After uint64
}

// Peer reports whether the id was minted by a peer hub of the cluster:
// reading goes on after After, from Since.
func (e *GapError) Peer() bool { return !e.Since.IsZero() }

func (e *GapError) Error() string {
	if e.Peer() {
		return fmt.Sprintf("event id %q was minted by another hub of the cluster; events since %s follow",
			e.ID, e.Since.UTC().Format(time.RFC3339Nano))
	}
	if e.Foreign {
		return fmt.Sprintf("event id %q was minted by another hub or data directory; oldest retained id is %q", e.ID, e.Oldest)
	}
	if e.Ahead {
		return fmt.Sprintf("event id %q is beyond the newest event of this hub; oldest retained id is %q", e.ID, e.Oldest)
	}
	return fmt.Sprintf("event id %q is no longer retained; oldest retained id is %q", e.ID, e.Oldest)
}

// Unwrap returns ErrForeignID, ErrAhead or ErrExpired.
func (e *GapError) Unwrap() error {
	switch {
	case e.Foreign:
		return ErrForeignID
	case e.Ahead:
		return ErrAhead
	}
	return ErrExpired
}

// newGap returns the *GapError of id, naming l's oldest retained id now.
func newGap(l Log, id string, foreign bool) *GapError {
	e := &GapError{ID: id, Foreign: foreign}
	e.Oldest, e.OldestSeq, _ = FormatOldest(l)
	return e
}

// FormatOldest returns the id of l's oldest retained event, formatted as
// clients see it, and its sequence; false when l retains nothing.
func FormatOldest(l Log) (string, uint64, bool) {
	seq, t, ok := l.OldestEvent()
	if !ok {
		return "", 0, false
	}
	return l.IDs().FormatAt(seq, t), seq, true
}

// foreignGap returns the *GapError of an id another store minted: with the
// point to read after from its time when it is a peer hub's.
func foreignGap(l Log, id string) error {
	e := newGap(l, id, true)
	since, ok := l.IDs().PeerSince(id)
	if !ok {
		return e
	}
	after, err := l.AfterTime(since)
	if err != nil {
		return fmt.Errorf("resume from a peer's id: %w", err)
	}
	e.Since, e.After = since, after
	return e
}

// ResumePoint returns the sequence of the event id from, to read the
// events after it up to upTo with ReadAfter; from "" means the start of
// the retained log. upTo is the newest id the reader knows of: the last
// committed one, or, for a watcher, the last one published to it. A
// malformed id is an error wrapping ErrBadID; a foreign one, one whose
// following events are no longer all retained, or one of this store
// beyond upTo, a *GapError (whose After is where to read on when a peer
// hub of the cluster minted it).
func ResumePoint(l Log, from string, upTo uint64) (uint64, error) {
	if from == "" {
		if oldest, ok := l.OldestID(); ok {
			return oldest - 1, nil
		}
		return l.LastID(), nil
	}
	seq, err := l.IDs().Parse(from)
	switch {
	case errors.Is(err, ErrForeignID):
		return 0, foreignGap(l, from)
	case err != nil:
		return 0, err
	}
	switch {
	case seq > upTo:
		e := newGap(l, from, false)
		e.Ahead = true
		return 0, e
	case gapAfter(l, seq, upTo):
		return 0, newGap(l, from, false)
	}
	return seq, nil
}

// ReadAfter returns the records with after < id <= upTo whose topic match
// accepts (nil: all), oldest first, at most limit of them (limit <= 0: no
// limit). It reads in bounded chunks, each one short read transaction.
// next is the id of the last record looked at: continue with after = next;
// next == upTo once the range is exhausted.
//
// When events of the range after `after` are no longer retained, found
// before the read or because retention trimmed them while it ran, ReadAfter
// returns a *GapError (wrapping ErrExpired) naming the oldest retained id,
// with the records read before the gap and next their last id looked at:
// they are complete, only what follows them is not.
func ReadAfter(l Log, after, upTo uint64, match func(topic string) bool, limit int) (recs []Record, next uint64, err error) {
	if gapAfter(l, after, upTo) {
		return nil, after, newGap(l, l.IDs().Format(after), false)
	}
	next = after
	for next < upTo && (limit <= 0 || len(recs) < limit) {
		want := 0
		if limit > 0 {
			want = limit - len(recs)
		}
		chunk, n, err := l.Scan(next, upTo, match, want)
		if err != nil {
			return nil, after, fmt.Errorf("read after %d: %w", next, err)
		}
		if n <= next {
			return nil, after, fmt.Errorf("read after %d: %w", next, errNoProgress)
		}
		if trimmedDuring(l, next, upTo, chunk) {
			return recs, next, newGap(l, l.IDs().Format(next), false)
		}
		recs, next = append(recs, chunk...), n
	}
	return recs, next, nil
}

// trimmedDuring reports whether a scan from after may have skipped events
// that retention trimmed while it ran: the oldest retained event is now
// past after+1, and the scan did not visibly start at after+1.
func trimmedDuring(l Log, after, upTo uint64, recs []Record) bool {
	if len(recs) > 0 && recs[0].ID == after+1 {
		return false
	}
	return gapAfter(l, after, upTo)
}

// gapAfter reports whether events in (after, upTo] are no longer retained.
func gapAfter(l Log, after, upTo uint64) bool {
	oldest, retained := l.OldestID()
	return after < upTo && (!retained || oldest > after+1)
}
