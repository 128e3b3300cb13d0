package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"

	bolt "go.etcd.io/bbolt"
)

// recoverTxKeys is how many keys Recover writes per transaction.
const recoverTxKeys = 10_000

// RecoverReport says what Recover copied and what it could not.
type RecoverReport struct {
	// Records and Events count the event log records copied and the
	// events in them.
	Records, Events int
	// Devices counts the device records copied (with each device's last
	// seq, which deduplicates its resends).
	Devices int
	// States counts the latest states copied.
	States int
	// Deleted counts the last sessions of deleted devices copied, from
	// which a device written again goes on; one whose device's record was
	// copied too is moved into the record (recover_deleted.go) and not
	// counted.
	Deleted int
	// Outbox counts the messages copied that wait to be forwarded to the
	// peer hubs of a cluster; Origins the highest origin ids copied (per
	// peer hub and device), which make a peer's message sent again a
	// duplicate.
	Outbox, Origins int
	// Commands counts the command records copied (with, in a cluster, the
	// replicas of the peer hubs' commands); PendingCommands those of them
	// not yet in a final state, which the hub delivers once it starts.
	Commands, PendingCommands int
	// CommandKeysFixed counts the entries of the commands' index, pending
	// list and peer ids that did not agree with the command records
	// copied, and were dropped or added.
	CommandKeysFixed int
	// Other counts the other keys copied: the file's identity, format and
	// id high-water mark, and any bucket this version does not know.
	Other int
	// Identity is the store identity copied, "" when it could not be read:
	// the new file then gets a new one, and event ids change.
	Identity string
	// Problem says why nothing could be read from the file as a whole (an
	// empty file, no readable header); "" otherwise.
	Problem string
	// Note says which header page could not be read while the other could.
	Note string
	// Damage lists the first damaged parts skipped; DamageCount counts all.
	Damage      []Damage
	DamageCount int
	// Salvaged counts what was found outside the file's tree.
	Salvaged Salvaged
	// Undecodable lists the values skipped because they could not be
	// decoded although their page could be read, and the buckets skipped
	// inside the buckets of commands, where the store keeps none.
	Undecodable []string
}

// Recover copies everything readable of the data file from into a new data
// file to: every event record, device record, latest state, the last
// session of each deleted device (recover_deleted.go), the file's
// identity, the commands to devices (recover_commands.go) and, for a hub
// in a cluster, the messages waiting to be forwarded and the peers'
// origin ids (recover_cluster.go), skipping the damaged parts, which the
// report lists; new event ids stay above every id the file still names
// (recover_ids.go). It never changes from, and refuses a to that exists.
// The new file passes Check and opens as a store; on an error it is
// removed.
func Recover(from, to string) (rep RecoverReport, err error) {
	if _, err := os.Stat(to); !errors.Is(err, fs.ErrNotExist) {
		return rep, fmt.Errorf("storage: recover into %s: the file exists (or cannot be checked: %v); name a new file", to, err)
	}
	src, err := os.Open(from)
	if err != nil {
		return rep, fmt.Errorf("storage: recover: %w", err)
	}
	defer src.Close()
	info, err := src.Stat()
	if err != nil {
		return rep, fmt.Errorf("storage: recover: %w", err)
	}
	db, err := bolt.Open(to, 0o600, &bolt.Options{NoFreelistSync: true, FreelistType: bolt.FreelistMapType, NoSync: true})
	if err != nil {
		return rep, fmt.Errorf("storage: recover: create %s: %w", to, err)
	}
	defer func() {
		if cerr := db.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("storage: recover: close %s: %w", to, cerr)
		}
		if err != nil {
			_ = os.Remove(to)
		}
	}()
	if err := copyReadable(&rep, src, info.Size(), db); err != nil {
		return rep, fmt.Errorf("storage: recover %s into %s: %w", from, to, err)
	}
	if err := staleIndex(db); err != nil {
		return rep, fmt.Errorf("storage: recover into %s: %w", to, err)
	}
	if err := db.Sync(); err != nil {
		return rep, fmt.Errorf("storage: recover: sync %s: %w", to, err)
	}
	return rep, nil
}

// copyReadable walks src and copies what it can read into db.
func copyReadable(rep *RecoverReport, src *os.File, size int64, db *bolt.DB) error {
	if size == 0 {
		rep.Problem = "the file is empty (0 bytes)"
		return nil
	}
	bf, err := openBoltFile(src, size)
	if err != nil {
		rep.Problem = err.Error()
		return nil
	}
	rep.Note = bf.metaNote
	c := &copier{db: db, rep: rep, skippedCommands: make(map[uint64]bool)}
	if err := c.begin(); err != nil {
		return err
	}
	w := boltWalk{bf: bf, open: c.open, put: c.put}
	walkErr := w.run()
	rep.Damage, rep.DamageCount = w.damage, w.damaged
	if err := c.finish(walkErr); err != nil {
		return err
	}
	lost, named := func(seq uint64) bool { return c.skippedCommands[seq] }, c.ids
	if w.damaged > 0 {
		sv, err := salvage(rep, bf, db, &w)
		if err != nil {
			return err
		}
		lost = func(seq uint64) bool { return c.skippedCommands[seq] || sv.wanted(bucketCommands, putSeq(seq)) }
		named = max(named, sv.ids)
	}
	if err := raiseHighWater(db, named); err != nil {
		return fmt.Errorf("id high-water mark: %w", err)
	}
	moved, err := settleDeleted(db)
	if err != nil {
		return fmt.Errorf("deleted devices: %w", err)
	}
	rep.Deleted -= moved
	if err := settleCommands(db, rep, lost); err != nil {
		return fmt.Errorf("commands: %w", err)
	}
	return db.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil && rep.Identity == "" {
			rep.Identity = string(meta.Get(metaIdentity))
		}
		return nil
	})
}

// salvage reads the pages the walk w did not reach and counts what it
// found in rep.
func salvage(rep *RecoverReport, bf *boltFile, db *bolt.DB, w *boltWalk) (*salvager, error) {
	sv := newSalvager(bf, db, w)
	if err := sv.run(); err != nil {
		return nil, fmt.Errorf("salvage: %w", err)
	}
	rep.Salvaged = Salvaged{Records: sv.nRecords, Devices: sv.nDevices, Deleted: sv.nDeleted, Outbox: sv.nOutbox,
		Origins: sv.nOrigins, Commands: sv.nCommands, Conflicts: sv.conflicts}
	rep.Records += sv.nRecords
	rep.Events += sv.nEvents
	rep.Devices += sv.nDevices
	rep.Deleted += sv.nDeleted
	rep.Outbox += sv.nOutbox
	rep.Origins += sv.nOrigins
	return sv, nil
}

// Salvaged counts what Recover found on pages the damaged file no longer
// led to: lost pages are often still in the file, and so are older copies
// of pages.
type Salvaged struct {
	// Records counts the event records found again (RecoverReport counts
	// them, and their events, too); Conflicts the event records, outbox
	// messages and commands dropped because two differing copies were
	// found.
	Records, Conflicts int
	// Devices counts the device records found again (RecoverReport counts
	// them too): the latest copy found, which may be older than the lost
	// one.
	Devices int
	// Deleted counts the sessions of deleted devices found again
	// (RecoverReport counts them too): the highest copy found, which may
	// be older than the lost one.
	Deleted int
	// Outbox counts the outbox messages found again (RecoverReport counts
	// them too); one the broker had acknowledged since is forwarded again,
	// and the peers store it once.
	Outbox int
	// Origins counts the origin ids found again (RecoverReport counts them
	// too): the highest copy found, which may be older than the lost one,
	// so that a peer's message sent again may be stored twice.
	Origins int
	// Commands counts the command records found again (RecoverReport
	// counts them too): of several copies the one furthest along, which
	// may be behind the lost one. CommandsFromLog counts the commands
	// made again from their last event in the log, or brought up to it.
	Commands, CommandsFromLog int
}

// copier writes the keys of a walk into the new file, in transactions of
// recoverTxKeys keys.
type copier struct {
	db   *bolt.DB
	rep  *RecoverReport
	tx   *bolt.Tx
	b    *bolt.Bucket // the bucket of path in tx
	path [][]byte
	keys int // keys in tx
	// skippedCommands holds the seqs of the command records skipped as
	// undecodable: made again from the log where it can.
	skippedCommands map[uint64]bool
	// ids is the highest event id the keys walked name (recover_ids.go).
	ids namedIDs
}

func (c *copier) begin() error {
	tx, err := c.db.Begin(true)
	if err != nil {
		return err
	}
	c.tx, c.b, c.path, c.keys = tx, nil, nil, 0
	return nil
}

// finish commits the last transaction, or rolls it back after err.
func (c *copier) finish(err error) error {
	if err != nil {
		_ = c.tx.Rollback()
		return err
	}
	return c.tx.Commit()
}

// open creates the bucket at path with the sequence seq: the commands
// bucket numbers new commands from it.
func (c *copier) open(path [][]byte, seq uint64) error {
	if nestedInStoreBucket(path) {
		if len(path) == 2 {
			c.rep.Undecodable = append(c.rep.Undecodable, fmt.Sprintf("%s %s: a bucket, which the store never keeps there", path[0], keyName(path[0], path[1])))
		}
		return nil
	}
	b, err := c.bucket(path)
	if err != nil || seq <= b.Sequence() {
		return err
	}
	return b.SetSequence(seq)
}

// bucket returns the bucket at path in the current transaction, creating
// it and its parents.
func (c *copier) bucket(path [][]byte) (*bolt.Bucket, error) {
	if c.b != nil && samePath(c.path, path) {
		return c.b, nil
	}
	b, err := c.tx.CreateBucketIfNotExists(path[0])
	for _, name := range path[1:] {
		if err != nil {
			break
		}
		b, err = b.CreateBucketIfNotExists(name)
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %q: %w", path, err)
	}
	if len(path) == 1 && (bytes.Equal(path[0], bucketEvents) || bytes.Equal(path[0], bucketOutbox)) {
		b.FillPercent = 1.0 // keys arrive in order, as the store appends them
	}
	c.b, c.path = b, c.path[:0]
	for _, p := range path {
		c.path = append(c.path, bytes.Clone(p))
	}
	return b, nil
}

func samePath(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// nestedInStoreBucket reports whether path names a bucket nested in one
// of the store's own buckets, or lies inside one. The store keeps only
// keys and values there and would read a nested bucket's name as a key
// whose value is missing (an event, a device, a command, an index entry),
// so Recover copies none of it; a bucket this version does not know is
// copied as it is.
func nestedInStoreBucket(path [][]byte) bool {
	return len(path) > 1 && isStoreBucket(path[0])
}

// isStoreBucket reports whether name is one of the store's own buckets.
func isStoreBucket(name []byte) bool {
	for _, b := range [][]byte{bucketEvents, bucketState, bucketDevices, bucketMeta, bucketTopics, bucketDeleted,
		bucketOutbox, bucketOrigins} {
		if bytes.Equal(name, b) {
			return true
		}
	}
	return isCommandBucket(name)
}

// put copies one key and value, unless the value cannot be decoded.
func (c *copier) put(path [][]byte, k, v []byte) error {
	if len(path) == 0 || !c.keep(path, k, v) {
		return nil
	}
	b, err := c.bucket(path)
	if err != nil {
		return err
	}
	// bbolt keeps the value, not a copy, until the commit.
	if err := b.Put(k, bytes.Clone(v)); err != nil {
		return fmt.Errorf("put %q in %q: %w", k, path, err)
	}
	if c.keys++; c.keys < recoverTxKeys {
		return nil
	}
	if err := c.tx.Commit(); err != nil {
		return err
	}
	return c.begin()
}

// keep checks a value of telehub's own buckets and counts it; it reports
// whether the value is to be copied.
func (c *copier) keep(path [][]byte, k, v []byte) bool {
	if nestedInStoreBucket(path) {
		return false // listed by open
	}
	if len(path) > 1 {
		c.rep.Other++
		return true
	}
	if bytes.Equal(path[0], bucketTopics) {
		c.ids.noteIndexKey(k)
		return false // built again from the log by the store's open (staleIndex)
	}
	var err error
	switch string(path[0]) {
	case string(bucketEvents):
		err = c.keepRecord(k, v)
	case string(bucketDevices):
		if _, err = decodeDevice(v); err == nil {
			c.rep.Devices++
		}
	case string(bucketState):
		c.rep.States++
	case string(bucketDeleted):
		if err = checkDeleted(k, v); err == nil {
			c.rep.Deleted++
		}
	case string(bucketMeta):
		err = c.keepMeta(k, v)
	case string(bucketOutbox):
		if err = checkOutbox(k, v); err == nil {
			c.rep.Outbox++
			c.ids.note(getID(k))
		}
	case string(bucketOrigins):
		if err = checkOrigin(k, v); err == nil {
			c.rep.Origins++
		}
	case string(bucketCommands): // counted once settled (recover_commands.go)
		if _, err = checkCommand(k, v); err != nil && len(k) == 8 {
			c.skippedCommands[getID(k)] = true
		}
	case string(bucketCommandIndex), string(bucketCommandPending):
		err = checkCommandKey(k, v)
	case string(bucketCommandPeers):
		err = checkCommandPeer(k, v)
	default:
		c.rep.Other++
	}
	if err != nil {
		c.rep.Undecodable = append(c.rep.Undecodable, fmt.Sprintf("%s %s: %v", path[0], keyName(path[0], k), err))
		return false
	}
	return true
}

// keepRecord checks an event log record: its key and every event in it.
func (c *copier) keepRecord(k, v []byte) error {
	if len(k) != 8 {
		return fmt.Errorf("%w: key of %d bytes", ErrCorrupt, len(k))
	}
	evs, err := decodeRecord(nil, v)
	if err != nil {
		return err
	}
	for i, ev := range evs {
		if _, err := decodeEvent(ev); err != nil {
			return fmt.Errorf("event %d: %w", getID(k)+uint64(i), err)
		}
	}
	c.rep.Records++
	c.rep.Events += len(evs)
	c.ids.noteRecord(k, v)
	return nil
}

// keepMeta checks the keys of the meta bucket this version knows.
func (c *copier) keepMeta(k, v []byte) error {
	switch string(k) {
	case string(metaIdentity):
		if !validIdentity(v) {
			return fmt.Errorf("%w: identity %q", ErrCorrupt, v)
		}
		c.rep.Identity = string(v)
	case string(metaHighWater):
		if len(v) != 8 {
			return fmt.Errorf("%w: high-water mark of %d bytes", ErrCorrupt, len(v))
		}
		c.ids.noteMark(v)
	}
	c.rep.Other++
	return nil
}

// keyName describes key k of bucket b for a report.
func keyName(b, k []byte) string {
	switch {
	case (bytes.Equal(b, bucketEvents) || bytes.Equal(b, bucketOutbox) || bytes.Equal(b, bucketCommands)) && len(k) == 8:
		return fmt.Sprint(getID(k))
	case bytes.Equal(b, bucketCommandIndex) || bytes.Equal(b, bucketCommandPending):
		return commandKeyName(k)
	case bytes.Equal(b, bucketState):
		return stateName(k)
	case bytes.Equal(b, bucketOrigins):
		return originName(k)
	}
	return quoteKey(k)
}
