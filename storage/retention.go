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
func (s *Store) trim(tx *bolt.Tx, budget int) (int, error) {
	if !s.needsTrim() {
		return 0, nil
	}
	c := tx.Bucket(bucketEvents).Cursor()
	n, last := s.trimRun(c, budget)
	if n == 0 {
		return 0, nil
	}
	if err := s.deleteRun(c, n, last); err != nil {
		return 0, err
	}
	s.w.loadOldest(tx)
	return n, nil
}

// trimRun returns the length of the run of oldest events trim deletes, at
// most budget, and the id of the run's last event.
func (s *Store) trimRun(c *bolt.Cursor, budget int) (n int, last uint64) {
	over, cutoff := s.over(), s.cutoffMs()
	for k, v := c.First(); k != nil && n < budget; k, v = c.Next() {
		if n >= over && retentionTime(v) >= cutoff {
			break
		}
		n++
		last = getID(k)
	}
	return n, last
}

// deleteRun deletes the n oldest events, last being the id of the newest of
// them. It walks the run backwards with one cursor: a Delete leaves the
// cursor's position stale for Next (it would skip a key) but not for Prev,
// and deleting the last entries of a leaf moves no other entry.
func (s *Store) deleteRun(c *bolt.Cursor, n int, last uint64) error {
	w := &s.w
	k, _ := c.Seek(w.setKey(putID(w.key[:0], last)))
	if k == nil || getID(k) != last {
		return fmt.Errorf("%w: trim: event %d not found", ErrCorrupt, last)
	}
	for i := range n {
		if k == nil {
			return fmt.Errorf("%w: trim: %d events before event %d, want %d", ErrCorrupt, i, last, n)
		}
		if err := c.Delete(); err != nil {
			return fmt.Errorf("trim event %d: %w", getID(k), err)
		}
		k, _ = c.Prev()
	}
	return nil
}

// retentionTime returns the time of an encoded event for retention, in unix
// ms. An event that cannot be decoded counts as expired, so that it is
// trimmed instead of stopping every later commit.
func retentionTime(v []byte) int64 {
	ms, err := eventTime(v)
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
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		n, err = s.trim(tx, idleTrimChunk)
		size = tx.Size()
		return err
	})
	s.met.CommitDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		s.w.restoreRange(saved)
		s.log.Error("retention trim failed", "err", err)
		return false
	}
	s.met.StorageBytes.Set(float64(size))
	s.publishRange()
	s.log.Debug("retention trimmed", "events", n, "oldest_id", s.w.oldest)
	return n > 0
}
