package storage

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Buckets of the data file.
var (
	// bucketEvents: id of a write's first event (8 bytes big-endian) ->
	// the record of all the write's events (see appendRecord).
	bucketEvents = []byte("events")
	// bucketState: stateKey(device, metric) -> latest State JSON.
	bucketState = []byte("state")
	// bucketDevices: device id -> encoded device record.
	bucketDevices = []byte("devices")
	// bucketMeta: the keys below.
	bucketMeta = []byte("meta")
)

// Keys of bucketMeta.
var (
	// metaFormat: the layout version, one byte.
	metaFormat = []byte("format")
	// metaIdentity: the store identity, 12 hex digits.
	metaIdentity = []byte("identity")
	// metaHighWater: the highest event id ever assigned, 8 bytes
	// big-endian; ids of trimmed events are never reused.
	metaHighWater = []byte("high_water")
)

// formatVersion is the layout version this package writes and reads.
// Version 1 stored one event per key; version 2 stores one record per write;
// version 3 adds the topic index (index.go). Open upgrades a version 2 file
// by building its index and refuses version 1.
const formatVersion = 3

// load creates what is missing in the file, then reads the identity, the
// id high-water mark and the retained range into the store.
func (s *Store) load() error {
	if err := s.upgradeLayout(); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta, err := createBuckets(tx)
		if err != nil {
			return err
		}
		if err := checkFormat(meta); err != nil {
			return err
		}
		ident, err := loadIdentity(meta)
		if err != nil {
			return err
		}
		s.ids = NewIDCodec(ident)
		if s.cfg.Cluster {
			s.ids = s.ids.InCluster(s.cfg.ResumeMargin)
		}
		return s.loadRange(tx, meta)
	})
	if err != nil {
		return fmt.Errorf("storage: load %s: %w", s.cfg.Path, err)
	}
	s.publishRange()
	return nil
}

// createBuckets creates the buckets that do not exist yet and returns the
// meta bucket.
func createBuckets(tx *bolt.Tx) (*bolt.Bucket, error) {
	for _, name := range [][]byte{bucketEvents, bucketState, bucketDevices, bucketTopics,
		bucketCommands, bucketCommandIndex, bucketCommandPending, bucketCommandPeers} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return nil, err
		}
	}
	return tx.CreateBucketIfNotExists(bucketMeta)
}

// checkFormat records the layout version in a new file and refuses a file
// of another version.
func checkFormat(meta *bolt.Bucket) error {
	v := meta.Get(metaFormat)
	if v == nil {
		return meta.Put(metaFormat, []byte{formatVersion})
	}
	if len(v) != 1 {
		return fmt.Errorf("%w: layout version %v, want %d", ErrCorrupt, v, formatVersion)
	}
	if v[0] < formatVersion {
		return fmt.Errorf("%w: layout version %d is older than %d and cannot be read; start with an empty data directory",
			ErrCorrupt, v[0], formatVersion)
	}
	if v[0] != formatVersion {
		return fmt.Errorf("%w: layout version %d, want %d", ErrCorrupt, v[0], formatVersion)
	}
	return nil
}

// loadIdentity returns the store identity, making one in a new file.
func loadIdentity(meta *bolt.Bucket) (string, error) {
	if v := meta.Get(metaIdentity); v != nil {
		if !validIdentity(v) {
			return "", fmt.Errorf("%w: identity %q", ErrCorrupt, v)
		}
		return string(v), nil
	}
	ident, err := newIdentity()
	if err != nil {
		return "", err
	}
	return ident, meta.Put(metaIdentity, []byte(ident))
}

// validIdentity reports whether v is 12 lowercase hex digits.
func validIdentity(v []byte) bool {
	if len(v) != 12 {
		return false
	}
	for _, c := range v {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// loadRange sets the writer's next id and retained range from the file.
func (s *Store) loadRange(tx *bolt.Tx, meta *bolt.Bucket) error {
	high := uint64(0)
	if v := meta.Get(metaHighWater); v != nil {
		if len(v) != 8 {
			return fmt.Errorf("%w: high-water mark of %d bytes", ErrCorrupt, len(v))
		}
		high = getID(v)
	}
	c := tx.Bucket(bucketEvents).Cursor()
	if k, v := c.Last(); k != nil {
		high = max(high, lastInRecord(k, v))
	}
	s.w.nextID = high + 1
	s.w.loadOldest(tx)
	s.met.StorageBytes.Set(float64(tx.Size()))
	return nil
}

// loadOldest reads the oldest retained event, the first of the first
// record, into the writer state.
func (w *writer) loadOldest(tx *bolt.Tx) {
	k, v := tx.Bucket(bucketEvents).Cursor().First()
	if k == nil {
		w.oldest, w.oldestMs = 0, 0
		return
	}
	w.oldest, w.oldestMs = getID(k), retentionTime(recordTime(v))
}

// publishRange makes the writer's committed range visible to readers and
// metrics.
func (s *Store) publishRange() {
	s.lastID.Store(s.w.nextID - 1)
	if o := s.oldest.Load(); o == nil || o.id != s.w.oldest || o.ms != s.w.oldestMs {
		s.oldest.Store(&oldestEvent{id: s.w.oldest, ms: s.w.oldestMs})
	}
	s.met.RetainedEvents.Set(float64(s.w.retained()))
}

// lastInRecord returns the id of the last event of the record k, v: its
// first id when the record cannot be read (the high-water mark still covers
// the rest).
func lastInRecord(k, v []byte) uint64 {
	n, err := recordLen(v)
	if err != nil {
		return getID(k)
	}
	return getID(k) + n - 1
}
