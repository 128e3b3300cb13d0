package storage

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/telehub/telehub/bridge"
)

// Buckets of a hub in a cluster.
var (
	// bucketOutbox: id of a write's first event (8 bytes big-endian) ->
	// commit time and the events' Record.Time (unix ms, 8 bytes
	// big-endian each) followed by the message
	// forwarded to the peer hubs (bridge.Write.Outbox). A message stays
	// until the forwarder reports it acknowledged (ForwardedUpTo).
	bucketOutbox = []byte("outbox")
	// bucketOrigins: origin node, 0x00, device -> the highest origin id
	// (8 bytes big-endian) stored of that node and device.
	bucketOrigins = []byte("origins")
)

// maxOutboxDelete bounds the outbox messages one ForwardedUpTo write
// removes, so that its transaction stays short.
const maxOutboxDelete = 4096

// OutboxEntry is one message waiting to be forwarded to the peer hubs.
type OutboxEntry struct {
	// ID is the id of the first event of the write the message belongs to.
	ID uint64
	// Committed is when the write was committed (the start of its
	// transaction, to the millisecond).
	Committed time.Time
	// Time is the Record.Time of the write's events, which timed ids
	// carry (IDCodec.FormatAt).
	Time time.Time
	// Body is the message (bridge.Write.Outbox), a copy.
	Body []byte
}

// Outbox returns up to limit messages waiting to be forwarded whose id is
// above after, oldest first.
func (s *Store) Outbox(after uint64, limit int) ([]OutboxEntry, error) {
	var out []OutboxEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(putID(nil, after+1)); k != nil && len(out) < limit; k, v = c.Next() {
			if len(k) != 8 || len(v) < 16 {
				return fmt.Errorf("%w: outbox entry %x", ErrCorrupt, k)
			}
			out = append(out, OutboxEntry{
				ID:        getID(k),
				Committed: time.UnixMilli(int64(binary.BigEndian.Uint64(v))).UTC(),
				Time:      time.UnixMilli(int64(binary.BigEndian.Uint64(v[8:]))).UTC(),
				Body:      append([]byte(nil), v[16:]...),
			})
		}
		return nil
	})
	if err != nil {
		return nil, viewErr("outbox", err)
	}
	return out, nil
}

// putOutbox keeps the message of a stored write under its first id, with
// the commit time and its events' time.
func (w *writer) putOutbox(tx *bolt.Tx, first uint64, commitMs, ms int64, body []byte) error {
	b, err := tx.CreateBucketIfNotExists(bucketOutbox)
	if err != nil {
		return err
	}
	b.FillPercent = 1.0
	start := len(w.arena)
	w.arena = binary.BigEndian.AppendUint64(w.arena, uint64(commitMs))
	w.arena = binary.BigEndian.AppendUint64(w.arena, uint64(ms))
	w.arena = append(w.arena, body...)
	if err := b.Put(w.setKey(putID(w.key[:0], first)), w.arena[start:]); err != nil {
		return fmt.Errorf("outbox %d: %w", first, err)
	}
	return nil
}

// deleteOutbox removes the outbox messages up to id, at most
// maxOutboxDelete of them.
func deleteOutbox(tx *bolt.Tx, upTo uint64) error {
	b := tx.Bucket(bucketOutbox)
	if b == nil {
		return nil
	}
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil && getID(k) <= upTo && len(keys) < maxOutboxDelete; k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("outbox %d: %w", getID(k), err)
		}
	}
	return nil
}

// originKey is the key of the highest origin id of node and device.
func originKey(node, device string) string { return node + "\x00" + device }

// originSeen reports whether the write's origin id was already stored,
// and records it as the highest of its node and device otherwise (in the
// batch; committed with it).
func (w *writer) originSeen(tx *bolt.Tx, wr *bridge.Write) (bool, error) {
	key := originKey(wr.Origin.Node, wr.Device)
	hw, ok := w.origins[key]
	if !ok {
		if b := tx.Bucket(bucketOrigins); b != nil {
			if v := b.Get([]byte(key)); len(v) == 8 {
				hw = getID(v)
			}
		}
	}
	if wr.Origin.ID <= hw {
		return true, nil
	}
	w.origins[key] = wr.Origin.ID
	return false, nil
}

// putOrigins stores the highest origin ids the batch recorded.
func (w *writer) putOrigins(tx *bolt.Tx) error {
	if len(w.origins) == 0 {
		return nil
	}
	b, err := tx.CreateBucketIfNotExists(bucketOrigins)
	if err != nil {
		return err
	}
	for k, id := range w.origins {
		if err := b.Put([]byte(k), putID(nil, id)); err != nil {
			return fmt.Errorf("origin %q: %w", k, err)
		}
	}
	return nil
}

// withOrigins gives the hub's own records "origin":"{node}:{id}" in their
// data in cluster mode (Config.Origins); records of a peer hub carry
// theirs from ingest.
func (s *Store) withOrigins(recs []Record) {
	if s.node == "" {
		return
	}
	for i := range recs {
		r := &recs[i]
		if !bridge.HasOrigin(r.Data) {
			id := s.ids.FormatAt(r.ID, r.Time)
			r.Data = bridge.AppendOrigin(make([]byte, 0, len(r.Data)+len(s.node)+len(id)+16), r.Data, s.node, id)
		}
	}
}
