package storage

import (
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
)

// idleTrimChunk is the most events one idle trim transaction deletes.
const idleTrimChunk = 4096

// cutoffMs returns the unix ms time before which events are over MaxAge.
func (s *Store) cutoffMs() int64 {
	return s.cfg.Now().Add(-s.cfg.MaxAge).UnixMilli()
}

// over returns how many retained events are over MaxEvents.
func (s *Store) over() int {
	return max(0, int(s.w.retained())-s.cfg.MaxEvents)
}

// needsTrim reports whether retention has work left.
func (s *Store) needsTrim() bool {
	return s.over() > 0 || (s.w.oldest != 0 && s.w.oldestMs < s.cutoffMs())
}

// trim deletes, oldest first, at most budget events that are over MaxEvents
// or older than MaxAge, and returns how many it deleted. It stops at the
// first event that is neither, so events are always dropped oldest first.
// Whole records are deleted; when only a prefix of the oldest remaining
// record must go, the rest is stored again under the id of its first event.
func (s *Store) trim(tx *bolt.Tx, budget int) (int, error) {
	if !s.needsTrim() {
		return 0, nil
	}
	bucket := tx.Bucket(bucketEvents)
	c := bucket.Cursor()
	run := s.trimRun(c, budget)
	if run.events == 0 {
		return 0, nil
	}
	if run.records > 0 {
		if err := s.deleteRun(c, run.records, run.last); err != nil {
			return 0, err
		}
	}
	if run.rest != nil {
		if err := s.rewrite(bucket, run); err != nil {
			return 0, err
		}
	}
	if err := s.w.ix.deleteDropped(tx); err != nil {
		return 0, err
	}
	s.w.loadOldest(tx)
	return run.events, nil
}

// trimPlan is what one trim deletes: the run of whole oldest records, and
// the prefix of the record after them when only part of it goes.
type trimPlan struct {
	events  int    // events deleted
	records int    // whole records deleted
	last    uint64 // id of the newest whole record deleted
	// cut is the id of the record losing a prefix, rest its remaining
	// events as a record, first the id of the first of them; rest is nil
	// when no record is cut.
	cut, first uint64
	rest       []byte
}

// trimRun plans the trim of at most budget of the oldest events.
func (s *Store) trimRun(c *bolt.Cursor, budget int) trimPlan {
	w := &s.w
	over, cutoff := s.over(), s.cutoffMs()
	var p trimPlan
	w.ix.resetDropped()
	for k, v := c.First(); k != nil && p.events < budget; k, v = c.Next() {
		evs, err := decodeRecord(w.evs[:0], v)
		w.evs = evs
		if err != nil {
			// A record that cannot be read counts as one expired event,
			// so that it is trimmed instead of stopping every later commit.
			p.events++
			p.records++
			p.last = getID(k)
			continue
		}
		drop := expired(evs, p.events, budget, over, cutoff)
		p.events += drop
		w.ix.dropped(getID(k), evs[:drop])
		if drop < len(evs) {
			if drop > 0 {
				p.cut, p.first = getID(k), getID(k)+uint64(drop)
				start := len(w.arena)
				w.arena = appendRecord(w.arena, evs[drop:])
				p.rest = w.arena[start:]
			}
			break
		}
		p.records++
		p.last = getID(k)
	}
	clear(w.evs)
	return p
}

// expired returns how many of the leading events evs trim deletes, when
// done of the oldest events are already deleted: while fewer than budget
// are, those over MaxEvents (over in all) and those before cutoff.
func expired(evs [][]byte, done, budget, over int, cutoff int64) int {
	n := 0
	for _, ev := range evs {
		if done+n == budget || (done+n >= over && retentionTime(eventTime(ev)) >= cutoff) {
			break
		}
		n++
	}
	return n
}

// deleteRun deletes the n oldest records, last being the id of the newest
// of them. It walks the run backwards with one cursor: a Delete leaves the
// cursor's position stale for Next (it would skip a key) but not for Prev,
// and deleting the last entries of a leaf moves no other entry.
func (s *Store) deleteRun(c *bolt.Cursor, n int, last uint64) error {
	w := &s.w
	k, _ := c.Seek(w.setKey(putID(w.key[:0], last)))
	if k == nil || getID(k) != last {
		return fmt.Errorf("%w: trim: record %d not found", ErrCorrupt, last)
	}
	for i := range n {
		if k == nil {
			return fmt.Errorf("%w: trim: %d records before record %d, want %d", ErrCorrupt, i, last, n)
		}
		if err := c.Delete(); err != nil {
			return fmt.Errorf("trim record %d: %w", getID(k), err)
		}
		k, _ = c.Prev()
	}
	return nil
}

// rewrite stores the rest of the cut record under the id of its first
// remaining event.
func (s *Store) rewrite(bucket *bolt.Bucket, p trimPlan) error {
	w := &s.w
	if err := bucket.Delete(w.setKey(putID(w.key[:0], p.cut))); err != nil {
		return fmt.Errorf("trim record %d: %w", p.cut, err)
	}
	// bbolt keeps the value until the commit; it lives in the arena.
	if err := bucket.Put(w.setKey(putID(w.key[:0], p.first)), p.rest); err != nil {
		return fmt.Errorf("trim record %d to %d: %w", p.cut, p.first, err)
	}
	return nil
}

// retentionTime returns the time of an event for retention, in unix ms,
// from the result of eventTime or recordTime. An event that cannot be
// decoded counts as expired, so that it is trimmed instead of stopping
// every later commit.
func retentionTime(ms int64, err error) int64 {
	if err != nil {
		return math.MinInt64
	}
	return ms
}

// trimIdle runs trim-only transactions while retention has work left and
// no write is waiting.
func (s *Store) trimIdle() {
	for s.needsTrim() {
		if !s.commitTrim() {
			return
		}
		if len(s.queue) > 0 {
			return
		}
		select {
		case <-s.drain:
			return
		default:
		}
	}
}

// commitTrim runs one trim transaction and reports whether it committed.
func (s *Store) commitTrim() bool {
	saved := s.w.saveRange()
	start := time.Now()
	var size int64
	var n int
	s.w.arena = s.w.arena[:0] // the last batch is committed
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		n, err = s.trim(tx, idleTrimChunk)
		size = tx.Size()
		return err
	})
	s.met.CommitDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		s.w.restoreRange(saved)
		s.writeFailed("retention trim", 0, 0, fullError(err))
		return false
	}
	s.writeOK()
	s.met.StorageBytes.Set(float64(size))
	s.publishRange()
	s.log.Debug("retention trimmed", "events", n, "oldest_id", s.w.oldest)
	return n > 0
}
