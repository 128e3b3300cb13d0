package storage

import (
	"container/heap"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/telehub/telehub/internal/topic"
)

// Bounds of one Latest call.
const (
	// maxIndexTopics is the most distinct topics Latest merges from the
	// topic index; filters matching more are answered from the log.
	maxIndexTopics = 1024
	// maxIndexSeeks bounds the index lookups that expanding the filters'
	// wildcards into topics may take.
	maxIndexSeeks = 8192
)

// Latest returns up to limit retained events with an id below before
// (before 0: any id) that match one of filters (none: every event), newest
// first. Filters without a leading '#' are answered from the topic index:
// the cost grows with limit and with the number of matching topics, not
// with the size of the log. Other filters, or filters matching more than
// 1024 topics, are answered by reading the log backwards, looking at no
// more than 4096 events per call.
//
// next is the id to continue from (as before) when the call stopped before
// finding limit events and older events remain to be looked at; 0 when
// nothing older can match. Records' Data is a copy, the caller's to keep.
func (s *Store) Latest(before uint64, filters []topic.Filter, limit int) (recs []Record, next uint64, err error) {
	if before == 0 {
		before = s.LastID() + 1
	}
	if limit <= 0 || before <= 1 {
		return nil, 0, nil
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if topics, ok := indexTopics(tx, filters); ok {
			recs, err = latestIndexed(tx, topics, before, limit, filters)
			return err
		}
		recs, next, err = latestLogged(tx, before, limit, filters)
		return err
	})
	if err != nil {
		return nil, 0, viewErr("latest events", err)
	}
	s.withOrigins(recs)
	return recs, next, nil
}

// matchAny reports whether topic matches one of filters; true when there
// are none.
func matchAny(filters []topic.Filter, t string) bool {
	if len(filters) == 0 {
		return true
	}
	for _, f := range filters {
		if f.Match(t) {
			return true
		}
	}
	return false
}

// latestIndexed merges the index entries of topics, newest first, and
// reads their events from the log.
func latestIndexed(tx *bolt.Tx, topics [][]byte, before uint64, limit int, filters []topic.Filter) ([]Record, error) {
	m := newIndexMerge(tx.Bucket(bucketTopics), topics, before)
	log := tx.Bucket(bucketEvents).Cursor()
	var (
		out []Record
		evs [][]byte
	)
	for len(out) < limit {
		id, ok := m.pop()
		if !ok {
			break
		}
		rec, found, err := eventAt(log, id, &evs)
		if err != nil {
			return nil, err
		}
		// An index key outlives its event only when the event could not
		// be decoded at trim time; the filter check guards the rest.
		if found && matchAny(filters, rec.Topic) {
			out = append(out, rec)
		}
	}
	return out, nil
}

// eventAt reads event id from the log, copying its bytes; found is false
// when no retained record holds it.
func eventAt(c *bolt.Cursor, id uint64, evs *[][]byte) (rec Record, found bool, err error) {
	k, v := seekEvent(c, id)
	if k == nil || getID(k) > id {
		return Record{}, false, nil
	}
	*evs, err = decodeRecord((*evs)[:0], v)
	if err != nil {
		return Record{}, false, fmt.Errorf("event %d: %w", id, err)
	}
	i := id - getID(k)
	if i >= uint64(len(*evs)) {
		return Record{}, false, nil
	}
	rec, _, err = readRecord(id, (*evs)[i], nil)
	return rec, err == nil, err
}

// indexMerge walks the index entries of several topics at once, newest id
// first: a max-heap holding the next entry of each topic.
type indexMerge struct {
	heads mergeHeap
}

// mergeHead is the next entry, newest first, of one topic.
type mergeHead struct {
	id     uint64
	c      *bolt.Cursor
	prefix []byte // the topic's keys: its index form and sepEnd
}

func newIndexMerge(b *bolt.Bucket, topics [][]byte, before uint64) *indexMerge {
	m := &indexMerge{heads: make(mergeHeap, 0, len(topics))}
	for _, t := range topics {
		h := mergeHead{c: b.Cursor(), prefix: append(t, sepEnd)}
		k, _ := h.c.Seek(putID(append([]byte(nil), h.prefix...), before))
		if k == nil {
			k, _ = h.c.Last()
		} else {
			k, _ = h.c.Prev()
		}
		if h.load(k) {
			m.heads = append(m.heads, h)
		}
	}
	heap.Init(&m.heads)
	return m
}

// load sets h to the entry k; false when k is not one of h's topic.
func (h *mergeHead) load(k []byte) bool {
	if !hasIndexPrefix(k, h.prefix) || len(k) != len(h.prefix)+8 {
		return false
	}
	h.id = getID(k[len(h.prefix):])
	return true
}

// pop returns the newest id not returned yet; false when none is left.
func (m *indexMerge) pop() (uint64, bool) {
	if len(m.heads) == 0 {
		return 0, false
	}
	top := &m.heads[0]
	id := top.id
	if k, _ := top.c.Prev(); top.load(k) {
		heap.Fix(&m.heads, 0)
	} else {
		heap.Pop(&m.heads)
	}
	return id, true
}

// mergeHeap is a max-heap of heads by id (container/heap).
type mergeHeap []mergeHead

func (h mergeHeap) Len() int           { return len(h) }
func (h mergeHeap) Less(i, j int) bool { return h[i].id > h[j].id }
func (h mergeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }

// Push appends x (a mergeHead); for container/heap.
func (h *mergeHeap) Push(x any) { *h = append(*h, x.(mergeHead)) }

// Pop removes the last element; for container/heap.
func (h *mergeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = mergeHead{}
	*h = old[:len(old)-1]
	return x
}

// latestLogged reads the log backwards from the event before before,
// looking at no more than scanWindow events.
func latestLogged(tx *bolt.Tx, before uint64, limit int, filters []topic.Filter) (out []Record, next uint64, err error) {
	c := tx.Bucket(bucketEvents).Cursor()
	var evs [][]byte
	looked := 0
	match := func(t string) bool { return matchAny(filters, t) }
	k, v := seekEvent(c, before-1)
	if k == nil {
		k, v = c.Last() // before is past the end of the log
	}
	for ; k != nil; k, v = c.Prev() {
		first := getID(k)
		if first >= before {
			continue // the log ends before before-1: start at its last record
		}
		if evs, err = decodeRecord(evs[:0], v); err != nil {
			return nil, 0, fmt.Errorf("event %d: %w", first, err)
		}
		for i := min(uint64(len(evs)), before-first); i > 0; i-- {
			id := first + i - 1
			if len(out) == limit || looked == scanWindow {
				return out, id + 1, nil
			}
			looked++
			rec, ok, err := readRecord(id, evs[i-1], match)
			if err != nil {
				return nil, 0, err
			}
			if ok {
				out = append(out, rec)
			}
		}
	}
	return out, 0, nil
}
