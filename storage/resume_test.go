package storage

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// memLog is a Log over records held in memory, ids from 1 on; trimmed
// drops the oldest ones. Its Scan looks at no more than 2 records per call,
// so that ReadAfter's chunking is exercised.
type memLog struct {
	ids     IDCodec
	last    uint64
	oldest  uint64 // 0: nothing retained
	onScan  func(l *memLog)
	stalled bool
	seekErr error
}

func newMemLog(t *testing.T, last, oldest uint64) *memLog {
	t.Helper()
	return &memLog{ids: NewIDCodec("hubA"), last: last, oldest: oldest}
}

func (l *memLog) IDs() IDCodec   { return l.ids }
func (l *memLog) LastID() uint64 { return l.last }
func (l *memLog) OldestID() (uint64, bool) {
	return l.oldest, l.oldest != 0
}

// memTime is the Record.Time of event id of a memLog: one a second from t0.
func memTime(id uint64) time.Time { return t0.Add(time.Duration(id) * time.Second) }

func (l *memLog) OldestEvent() (uint64, time.Time, bool) {
	return l.oldest, memTime(l.oldest), l.oldest != 0
}

func (l *memLog) AfterTime(t time.Time) (uint64, error) {
	if l.seekErr != nil {
		return 0, l.seekErr
	}
	if l.oldest == 0 {
		return l.last, nil
	}
	for id := l.oldest; id <= l.last; id++ {
		if !memTime(id).Before(t) {
			return id - 1, nil
		}
	}
	return l.last, nil
}

func (l *memLog) Scan(after, upTo uint64, match func(string) bool, limit int) ([]Record, uint64, error) {
	defer func() {
		if l.onScan != nil {
			l.onScan(l)
		}
	}()
	if l.stalled {
		return nil, after, nil
	}
	var out []Record
	next := after
	for id := max(after+1, l.oldest); id <= upTo && id-max(after+1, l.oldest) < 2; id++ {
		if limit > 0 && len(out) == limit {
			break
		}
		next = id
		if l.oldest != 0 && (match == nil || match("t")) {
			out = append(out, Record{ID: id, Topic: "t"})
		}
	}
	if next == after || next >= upTo {
		next = upTo
	}
	return out, next, nil
}

func TestResumePoint(t *testing.T) {
	l := newMemLog(t, 100, 50)
	other := NewIDCodec("hubB")
	tests := []struct {
		name    string
		from    string
		want    uint64
		wantErr error
	}{
		{"start of the log", "", 49, nil},
		{"just before the oldest", l.ids.Format(49), 49, nil},
		{"retained", l.ids.Format(70), 70, nil},
		{"the last id", l.ids.Format(100), 100, nil},
		{"beyond the last id", l.ids.Format(101), 0, ErrAhead},
		{"expired", l.ids.Format(48), 0, ErrExpired},
		{"foreign", other.Format(70), 0, ErrForeignID},
		{"malformed", "nonsense", 0, ErrBadID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResumePoint(l, tt.from, l.LastID())
			if !errors.Is(err, tt.wantErr) || (err == nil && got != tt.want) {
				t.Fatalf("ResumePoint(%q) = %d, %v; want %d, %v", tt.from, got, err, tt.want, tt.wantErr)
			}
			var gap *GapError
			if errors.As(err, &gap) && (gap.Oldest != l.ids.Format(50) || gap.OldestSeq != 50 || !strings.Contains(gap.Error(), gap.Oldest)) {
				t.Fatalf("gap %+v does not name the oldest retained id", gap)
			}
		})
	}
}

func TestResumePointEmptyLog(t *testing.T) {
	l := newMemLog(t, 30, 0)
	if got, err := ResumePoint(l, "", l.LastID()); err != nil || got != 30 {
		t.Fatalf("ResumePoint of an empty log = %d, %v; want 30", got, err)
	}
	_, err := ResumePoint(l, l.ids.Format(10), l.LastID())
	var gap *GapError
	if !errors.As(err, &gap) || gap.Oldest != "" || gap.OldestSeq != 0 {
		t.Fatalf("ResumePoint of a trimmed id in an empty log: %v", err)
	}
}

func TestReadAfter(t *testing.T) {
	l := newMemLog(t, 10, 1)
	recs, next, err := ReadAfter(l, 2, 10, nil, 5)
	if err != nil || len(recs) != 5 || recs[0].ID != 3 || recs[4].ID != 7 || next != 7 {
		t.Fatalf("ReadAfter = %d records, next %d, %v", len(recs), next, err)
	}
	recs, next, err = ReadAfter(l, next, 10, nil, 0)
	if err != nil || len(recs) != 3 || next != 10 {
		t.Fatalf("ReadAfter to the end = %d records, next %d, %v", len(recs), next, err)
	}
	if recs, next, err := ReadAfter(l, 10, 10, nil, 5); err != nil || len(recs) != 0 || next != 10 {
		t.Fatalf("ReadAfter of an empty range = %d records, next %d, %v", len(recs), next, err)
	}
}

func TestReadAfterGaps(t *testing.T) {
	t.Run("expired before the read", func(t *testing.T) {
		l := newMemLog(t, 10, 6)
		_, _, err := ReadAfter(l, 2, 10, nil, 5)
		var gap *GapError
		if !errors.As(err, &gap) || !errors.Is(err, ErrExpired) || gap.OldestSeq != 6 {
			t.Fatalf("err = %v, want a gap naming 6", err)
		}
	})
	t.Run("trimmed while read", func(t *testing.T) {
		l := newMemLog(t, 10, 1)
		l.onScan = func(l *memLog) {
			if l.oldest == 1 {
				l.oldest = 8 // after the first chunk, ids 1 and 2
			}
		}
		recs, next, err := ReadAfter(l, 0, 10, nil, 0)
		if !errors.Is(err, ErrExpired) || len(recs) != 2 || next != 2 {
			t.Fatalf("ReadAfter = %d records, next %d, %v; want the first chunk and the gap", len(recs), next, err)
		}
	})
	t.Run("no progress", func(t *testing.T) {
		l := newMemLog(t, 10, 1)
		l.stalled = true
		if _, _, err := ReadAfter(l, 0, 10, nil, 0); !errors.Is(err, errNoProgress) {
			t.Fatalf("err = %v, want errNoProgress", err)
		}
	})
}

func TestTrimmedDuring(t *testing.T) {
	recs := func(ids ...uint64) []Record {
		out := make([]Record, len(ids))
		for i, id := range ids {
			out[i].ID = id
		}
		return out
	}
	tests := []struct {
		name   string
		oldest uint64
		after  uint64
		recs   []Record
		want   bool
	}{
		{"nothing trimmed", 5, 10, recs(12), false},
		{"trimmed past the start, scan began there", 20, 10, recs(11, 12), false},
		{"trimmed past the start, filtered scan", 20, 10, recs(25), true},
		{"trimmed past the start, nothing matched", 20, 10, nil, true},
		{"everything trimmed", 0, 10, nil, true},
		{"oldest is the next id", 11, 10, nil, false},
	}
	for _, tt := range tests {
		l := newMemLog(t, 100, tt.oldest)
		if got := trimmedDuring(l, tt.after, 100, tt.recs); got != tt.want {
			t.Errorf("%s: trimmedDuring = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestResumePointPeer(t *testing.T) {
	const margin = 10 * time.Second
	l := newMemLog(t, 100, 50) // event id at memTime(id)
	l.ids = l.ids.InCluster(margin)
	peer := NewIDCodec("hubB").InCluster(margin)
	tests := []struct {
		name      string
		from      string
		wantAfter uint64
		wantSince time.Time
	}{
		// Events 50..100 are retained; the peer's event at memTime(80)
		// replays from memTime(70), event 70.
		{"inside the retained range", peer.FormatAt(3, memTime(80)), 69, memTime(70)},
		{"older than every retained event", peer.FormatAt(3, memTime(20)), 49, memTime(10)},
		{"newer than every retained event", peer.FormatAt(3, memTime(200)), 100, memTime(190)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ResumePoint(l, tt.from, l.LastID())
			var gap *GapError
			if !errors.As(err, &gap) || !errors.Is(err, ErrForeignID) || !gap.Peer() {
				t.Fatalf("ResumePoint(%q) = %v, want a peer's gap", tt.from, err)
			}
			if gap.After != tt.wantAfter || !gap.Since.Equal(tt.wantSince) {
				t.Fatalf("gap after %d since %v, want after %d since %v", gap.After, gap.Since, tt.wantAfter, tt.wantSince)
			}
			if gap.Oldest != l.ids.FormatAt(50, memTime(50)) || !strings.Contains(gap.Error(), "since") {
				t.Fatalf("gap %+v: %v", gap, gap)
			}
		})
	}
	t.Run("a peer's id without a time", func(t *testing.T) {
		_, err := ResumePoint(l, NewIDCodec("hubB").Format(3), l.LastID())
		var gap *GapError
		if !errors.As(err, &gap) || gap.Peer() || !gap.Foreign || gap.OldestSeq != 50 {
			t.Fatalf("ResumePoint = %v, want a foreign gap from the oldest", err)
		}
	})
	t.Run("not in a cluster", func(t *testing.T) {
		single := newMemLog(t, 100, 50)
		_, err := ResumePoint(single, peer.FormatAt(3, memTime(80)), single.LastID())
		var gap *GapError
		if !errors.As(err, &gap) || gap.Peer() || gap.Oldest != single.ids.Format(50) {
			t.Fatalf("ResumePoint = %v, want a foreign gap from the oldest", err)
		}
	})
	t.Run("the log cannot be read", func(t *testing.T) {
		bad := newMemLog(t, 100, 50)
		bad.ids, bad.seekErr = bad.ids.InCluster(margin), ErrClosed
		_, err := ResumePoint(bad, peer.FormatAt(3, memTime(80)), bad.LastID())
		var gap *GapError
		if !errors.Is(err, ErrClosed) || errors.As(err, &gap) {
			t.Fatalf("ResumePoint = %v, want the read's error", err)
		}
	})
}
