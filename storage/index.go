package storage

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The topic index lets a reader find the newest events of a topic without
// scanning the log: bucketTopics holds one empty-valued key per retained
// event, indexKey(topic, id). It is written in the transaction that appends
// the events and trimmed in the one that trims them, so within any read
// transaction it lists exactly the retained events.
//
// In a key, each '/' of the topic is written as sepLevel and the topic ends
// with sepEnd, then the 8-byte big-endian id. Both separators sort before
// every byte a topic level holds, so all keys of one topic are contiguous
// and ordered by id, all topics below one level value follow that value
// directly, and sepNext after a level value seeks past all of them.
const (
	sepEnd   byte = 0x00
	sepLevel byte = 0x01
	sepNext  byte = 0x02
)

// bucketTopics: indexKey(topic, id) -> empty.
var bucketTopics = []byte("topics")

// appendTopic appends the index form of topic: '/' written as sepLevel.
func appendTopic(b []byte, topic string) []byte {
	for i := 0; i < len(topic); i++ {
		c := topic[i]
		if c == '/' {
			c = sepLevel
		}
		b = append(b, c)
	}
	return b
}

// appendIndexKey appends the index key of event id of topic to b.
func appendIndexKey(b []byte, topic string, id uint64) []byte {
	b = append(appendTopic(b, topic), sepEnd)
	return putID(b, id)
}

// indexer collects the index keys a transaction adds and deletes; it is
// part of the writer state.
type indexer struct {
	add, del []byte // index keys, each topic part followed by sepEnd and 8 id bytes
	addEnds  []int  // end offset of each key in add
	delEnds  []int  // end offset of each key in del
}

// added records that event id of topic is appended by the batch.
func (x *indexer) added(topic string, id uint64) {
	x.add = appendIndexKey(x.add, topic, id)
	x.addEnds = append(x.addEnds, len(x.add))
}

// dropped records that the events evs of the record whose first event has
// id first are trimmed. An event that cannot be decoded keeps its key: its
// topic is unknown, and readers skip keys of events no longer retained.
func (x *indexer) dropped(first uint64, evs [][]byte) {
	for i, ev := range evs {
		f, err := decodeEvent(ev)
		if err != nil {
			continue
		}
		x.del = putID(append(appendTopicBytes(x.del, f.topic), sepEnd), first+uint64(i))
		x.delEnds = append(x.delEnds, len(x.del))
	}
}

// appendTopicBytes is appendTopic for a topic held in bytes.
func appendTopicBytes(b, topic []byte) []byte {
	start := len(b)
	b = append(b, topic...)
	for i := start; i < len(b); i++ {
		if b[i] == '/' {
			b[i] = sepLevel
		}
	}
	return b
}

// reset forgets the keys collected, as at the start of a batch or after a
// failed transaction.
func (x *indexer) reset() {
	x.add, x.addEnds = x.add[:0], x.addEnds[:0]
	x.resetDropped()
}

// resetDropped forgets the keys of trimmed events collected so far.
func (x *indexer) resetDropped() {
	x.del, x.delEnds = x.del[:0], x.delEnds[:0]
}

// putAdded writes the keys of the appended events into the index.
func (x *indexer) putAdded(tx *bolt.Tx) error {
	b := tx.Bucket(bucketTopics)
	start := 0
	for _, end := range x.addEnds {
		if err := b.Put(x.add[start:end], []byte{}); err != nil {
			return fmt.Errorf("topic index of event %d: %w", getID(x.add[end-8:end]), err)
		}
		start = end
	}
	x.add, x.addEnds = x.add[:0], x.addEnds[:0]
	return nil
}

// deleteDropped removes the keys of the trimmed events from the index.
func (x *indexer) deleteDropped(tx *bolt.Tx) error {
	b := tx.Bucket(bucketTopics)
	start := 0
	for _, end := range x.delEnds {
		if err := b.Delete(x.del[start:end]); err != nil {
			return fmt.Errorf("trim topic index of event %d: %w", getID(x.del[end-8:end]), err)
		}
		start = end
	}
	x.resetDropped()
	return nil
}

// indexedTopic splits an index key into its topic part (up to sepEnd) and
// its id; ok is false for a key that is not an index key.
func indexedTopic(k []byte) (topic []byte, id uint64, ok bool) {
	if len(k) < 9 || k[len(k)-9] != sepEnd {
		return nil, 0, false
	}
	return k[:len(k)-9], getID(k[len(k)-8:]), true
}

// indexRecord adds the keys of every event of the record k, v to the
// index bucket b, as an upgrade from a layout without the index does.
func indexRecord(b *bolt.Bucket, k, v []byte, evs [][]byte, key []byte) ([][]byte, []byte, error) {
	evs, err := decodeRecord(evs[:0], v)
	if err != nil {
		return evs, key, nil // trimmed in time like any unreadable record; nothing to index
	}
	first := getID(k)
	for i, ev := range evs {
		f, err := decodeEvent(ev)
		if err != nil {
			continue
		}
		key = putID(append(appendTopicBytes(key[:0], f.topic), sepEnd), first+uint64(i))
		if err := b.Put(key, []byte{}); err != nil {
			return evs, key, fmt.Errorf("topic index of event %d: %w", first+uint64(i), err)
		}
	}
	return evs, key, nil
}

// hasIndexPrefix reports whether k starts with p.
func hasIndexPrefix(k, p []byte) bool { return k != nil && bytes.HasPrefix(k, p) }

// layoutWithoutIndex is the layout version written before the topic
// index existed; Open upgrades such a file by building the index.
const layoutWithoutIndex = 2

// upgradeChunk is the most records one upgrade transaction indexes, so
// that building the index of a large log does not hold every dirty page
// in memory at once.
const upgradeChunk = 16384

// upgradeLayout builds the topic index of a file of layoutWithoutIndex,
// then marks the file as formatVersion. It runs in several transactions;
// the version changes only in the last, so an upgrade cut short by a crash
// starts over on the next Open.
func (s *Store) upgradeLayout() error {
	version, err := s.storedVersion()
	if err != nil || version != layoutWithoutIndex {
		return err
	}
	s.log.Info("building the topic index of the event log: once, after an upgrade", "path", s.cfg.Path)
	err = s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketTopics) != nil {
			if err := tx.DeleteBucket(bucketTopics); err != nil {
				return err
			}
		}
		_, err := createBuckets(tx) // a recovered file may lack some
		return err
	})
	for from, done := []byte(nil), false; err == nil && !done; {
		from, done, err = s.indexChunk(from)
	}
	if err == nil {
		err = s.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(metaFormat, []byte{formatVersion})
		})
	}
	if err != nil {
		return fmt.Errorf("storage: build the topic index of %s: %w", s.cfg.Path, err)
	}
	return nil
}

// storedVersion returns the layout version recorded in the file, 0 when
// none is (a new file).
func (s *Store) storedVersion() (byte, error) {
	var version byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			if v := meta.Get(metaFormat); len(v) == 1 {
				version = v[0]
			}
		}
		return nil
	})
	return version, err
}

// indexChunk indexes up to upgradeChunk records of the log from the record
// with key from (nil: the first) in one transaction, and returns the key to
// go on from and whether the log is done.
func (s *Store) indexChunk(from []byte) (next []byte, done bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTopics)
		c := tx.Bucket(bucketEvents).Cursor()
		k, v := c.First()
		if from != nil {
			k, v = c.Seek(from)
		}
		var (
			evs [][]byte
			key []byte
			err error
		)
		for n := 0; k != nil && n < upgradeChunk; n++ {
			if evs, key, err = indexRecord(b, k, v, evs, key); err != nil {
				return err
			}
			k, v = c.Next()
		}
		next, done = bytes.Clone(k), k == nil
		return nil
	})
	return next, done, err
}

// staleIndex drops the topic index of a file whose log was copied or
// salvaged in parts (Recover), and marks the file as of the layout before
// the index, so that the store's Open builds the index from the log again.
// A file of an older layout keeps its version: Open refuses it.
func staleIndex(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketTopics) != nil {
			if err := tx.DeleteBucket(bucketTopics); err != nil {
				return fmt.Errorf("drop the topic index: %w", err)
			}
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(metaFormat); len(v) == 1 && v[0] < layoutWithoutIndex {
			return nil
		}
		return meta.Put(metaFormat, []byte{layoutWithoutIndex})
	})
}
