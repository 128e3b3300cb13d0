package storage

import (
	"bytes"

	bolt "go.etcd.io/bbolt"
)

// What Recover does with the id high-water mark (layout.go), the highest
// event id the store ever gave out: new ids stay above it, so that no new
// event takes the id of one a watcher or a peer hub has seen, trimmed
// since or not. The mark is copied from the meta bucket when it can be
// read; the new file's mark is then raised to the highest event id the
// damaged file still names, so that ids never go back when the meta
// bucket or the mark in it was lost:
//   - the last event of every record read: those the walk copied and, on
//     the pages salvage reads, also records of parts not lost, older
//     copies, records trimmed since and records dropped for differing
//     copies;
//   - the keys of the outbox (a message waits under its event's id);
//   - the keys of the topic index, which name retained events (the index
//     itself is built again from the log);
//   - the marks of older copies of the meta bucket found outside the tree,
//     on a page of its own or inline on an older copy of the list of
//     buckets (lower than the lost mark, never higher).
// Command ids are numbered apart (recover_commands.go) and name no event;
// the events of commands are in the log like any other.

// maxNamedID bounds the ids taken from the damaged file: a higher one is
// damage, not an id (a hub storing a million events a second reaches it
// after 290 000 years).
const maxNamedID = 1 << 63

// namedIDs is the highest event id seen in the damaged file.
type namedIDs uint64

// note notes event id.
func (n *namedIDs) note(id uint64) {
	if id < maxNamedID {
		*n = max(*n, namedIDs(id))
	}
}

// noteRecord notes the last event of the event record k, v.
func (n *namedIDs) noteRecord(k, v []byte) {
	if len(k) == 8 {
		n.note(lastInRecord(k, v))
	}
}

// noteIndexKey notes the event a key of the topic index names: its last
// 8 bytes, after the byte that ends the topic.
func (n *namedIDs) noteIndexKey(k []byte) {
	if len(k) > 9 && k[len(k)-9] == sepEnd {
		n.note(getID(k[len(k)-8:]))
	}
}

// noteMark notes an id high-water mark.
func (n *namedIDs) noteMark(v []byte) {
	if len(v) == 8 {
		n.note(getID(v))
	}
}

// raiseHighWater raises the id high-water mark of the new file to named,
// when the mark copied is lower or was lost.
func raiseHighWater(db *bolt.DB, named namedIDs) error {
	if named == 0 {
		return nil
	}
	return db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(metaHighWater); len(v) == 8 && getID(v) >= uint64(named) {
			return nil
		}
		return meta.Put(metaHighWater, putID(nil, uint64(named)))
	})
}

// inlineMeta salvages an older copy of the meta bucket stored inline on
// p, when p is an older copy of the list of buckets.
func (sv *salvager) inlineMeta(tx *bolt.Tx, p boltPage) error {
	for i := range p.count {
		v, nested := p.leaf(i)
		if !nested || !bytes.Equal(p.key(i), bucketMeta) || len(v) < bucketHeaderSize || byteOrder.Uint64(v) != 0 {
			continue
		}
		inline, err := inlinePage(v[bucketHeaderSize:])
		if err != nil || inline.count == 0 || !inline.all(isMeta) {
			return nil
		}
		return sv.meta(tx, inline)
	}
	return nil
}
