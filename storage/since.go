package storage

import (
	"time"

	bolt "go.etcd.io/bbolt"
)

// AfterTime returns the id to read after to get the retained events whose
// Record.Time is at or after t: one before the first record of such an
// event. When every retained event is older than t it returns the last id
// of the log, and when none is retained LastID.
//
// It binary-searches the log's keys in one short read transaction (about
// 20 seeks for a million events): records are appended in the order of
// their receive times as long as the clock does not step back, and writes
// received within one queue wait of each other may commit out of that
// order by at most that wait, which the resume margin covers.
func (s *Store) AfterTime(t time.Time) (uint64, error) {
	var after uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		var ok bool
		after, ok = afterTime(tx.Bucket(bucketEvents).Cursor(), t.UnixMilli())
		if !ok {
			after = s.LastID()
		}
		return nil
	})
	if err != nil {
		return 0, viewErr("seek time", err)
	}
	return after, nil
}

// afterTime returns the id before the first record whose first event's time
// is at or after ms, or the last id of the log when there is none; false
// when the log is empty.
func afterTime(c *bolt.Cursor, ms int64) (uint64, bool) {
	first, _ := c.First()
	lastK, lastV := c.Last()
	if first == nil {
		return 0, false
	}
	if recordMs(lastV) < ms {
		return lastInRecord(lastK, lastV), true
	}
	// The record at hi is of ms or later; find the smallest key x whose
	// record (the first at or after x) is.
	lo, hi := getID(first), getID(lastK)
	key := make([]byte, 0, 8)
	for lo < hi {
		mid := lo + (hi-lo)/2
		_, v := c.Seek(putID(key[:0], mid))
		if recordMs(v) >= ms {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	k, _ := c.Seek(putID(key[:0], lo))
	return getID(k) - 1, true
}

// recordMs returns the time of a record's first event, in unix ms; a
// record that cannot be read counts as the oldest possible.
func recordMs(v []byte) int64 { return retentionTime(recordTime(v)) }
