package storage

import (
	"bytes"
	"errors"

	bolt "go.etcd.io/bbolt"

	"github.com/telehub/telehub/internal/topic"
)

// When part of the tree is lost, the pages it led to are often still in
// the file, and so are older copies of pages that commits replaced (bbolt
// never writes a page in place). salvage reads every page the walk did not
// reach and takes from the sound leaf pages what can be told apart and
// trusted:
//   - event records: an event id is never given to another event, so any
//     copy of a record is the record (two copies that differ are both
//     dropped);
//   - device records, the most recently seen copy: it may be older than
//     the lost one, so a resend of a reading stored since can be stored
//     twice, never lost;
//   - the store identity, which never changes, also from an older copy of
//     the list of buckets holding the meta bucket inline, and the highest
//     event id every page read names (recover_ids.go);
//   - the last sessions of deleted devices (recover_deleted.go);
//   - outbox messages and origin ids (recover_cluster.go);
//   - command records and peers' command ids (recover_commands.go).
// Latest states are not taken: an older copy cannot be told from the last.

// salvager copies from unreached pages into the new file the keys of the
// parts the walk lost.
type salvager struct {
	bf *boltFile
	db *bolt.DB
	// lost are the damaged parts; all is set when the bucket list itself
	// was lost, or more parts than were kept.
	lost []Damage
	all  bool

	nRecords, nEvents, nDevices int      // copied
	nDeleted                    int      // copied
	nOutbox, nOrigins           int      // copied
	nCommands                   int      // copied
	conflicts                   int      // event records and outbox messages dropped for differing copies
	ids                         namedIDs // the highest event id the pages read name (recover_ids.go)
	// found holds the ids of the event records salvage copied, true, and
	// of those it dropped, false; outboxFound the same of outbox messages.
	found, outboxFound map[uint64]bool
	// cmdFound holds the seqs of the command records salvage copied, true,
	// and of those it dropped, false.
	cmdFound map[uint64]bool
}

func newSalvager(bf *boltFile, db *bolt.DB, w *boltWalk) *salvager {
	sv := &salvager{bf: bf, db: db, lost: w.damage, found: make(map[uint64]bool), outboxFound: make(map[uint64]bool),
		cmdFound: make(map[uint64]bool)}
	sv.all = w.damaged > len(w.damage)
	for _, d := range w.damage {
		sv.all = sv.all || d.Bucket == ""
	}
	return sv
}

// wanted reports whether key k of bucket b lies in a lost part.
func (sv *salvager) wanted(b, k []byte) bool {
	if sv.all {
		return true
	}
	for _, d := range sv.lost {
		if d.Bucket == string(b) && (d.From == nil || bytes.Compare(k, d.From) >= 0) &&
			(d.To == nil || bytes.Compare(k, d.To) < 0) {
			return true
		}
	}
	return false
}

// run reads every unreached page below the high-water mark that lies in
// the file, in transactions of a few thousand pages.
func (sv *salvager) run() error {
	last := min(sv.bf.meta.hwm, uint64(sv.bf.size)/uint64(sv.bf.pageSize))
	const pagesPerTx = 4096
	for first := uint64(2); first < last; first += pagesPerTx {
		err := sv.db.Update(func(tx *bolt.Tx) error {
			for id := first; id < min(first+pagesPerTx, last); id++ {
				if err := sv.page(tx, id); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// page salvages one page, when the walk did not reach it and it is a
// sound leaf page.
func (sv *salvager) page(tx *bolt.Tx, id uint64) error {
	if sv.bf.seen[id/64]&(1<<(id%64)) != 0 {
		return nil
	}
	buf, err := sv.bf.read(id, 1, 0)
	if err != nil {
		return err
	}
	overflow := uint64(byteOrder.Uint32(buf[12:]))
	if byteOrder.Uint64(buf) != id || byteOrder.Uint16(buf[8:]) != flagLeaf || overflow >= sv.bf.meta.hwm-id {
		return nil
	}
	if overflow > 0 {
		if buf, err = sv.bf.read(id, overflow+1, 0); errors.Is(err, errNotPage) {
			return nil
		} else if err != nil {
			return err
		}
	}
	p := boltPage{id: id, flags: flagLeaf, count: int(byteOrder.Uint16(buf[10:])), data: buf}
	if p.count == 0 || p.check() != nil {
		return nil
	}
	switch {
	case p.all(isRecord):
		for i := range p.count {
			v, _ := p.leaf(i)
			sv.ids.noteRecord(p.key(i), v)
		}
		return sv.leafInto(tx, bucketEvents, p, sv.record)
	case p.all(isDevice):
		return sv.leafInto(tx, bucketDevices, p, sv.device)
	case p.all(isMeta):
		return sv.meta(tx, p)
	case p.all(isDeleted):
		return sv.leafInto(tx, bucketDeleted, p, sv.deleted)
	case p.all(isOutbox):
		for i := range p.count {
			sv.ids.note(getID(p.key(i)))
		}
		return sv.leafInto(tx, bucketOutbox, p, sv.outboxEntry)
	case p.all(isOrigin):
		return sv.leafInto(tx, bucketOrigins, p, sv.origin)
	case p.all(isCommand):
		return sv.leafInto(tx, bucketCommands, p, sv.command)
	case p.all(isCommandPeer):
		return sv.leafInto(tx, bucketCommandPeers, p, sv.commandPeer)
	}
	return sv.inlineMeta(tx, p)
}

// leafInto calls put with bucket name of the new file (created if
// missing) for each element of p that the walk did not copy there.
func (sv *salvager) leafInto(tx *bolt.Tx, name []byte, p boltPage, put func(b *bolt.Bucket, k, v []byte) error) error {
	b, err := tx.CreateBucketIfNotExists(name)
	if err != nil {
		return err
	}
	for i := range p.count {
		k := p.key(i)
		if !sv.wanted(name, k) {
			continue
		}
		v, _ := p.leaf(i)
		if err := put(b, k, v); err != nil {
			return err
		}
	}
	return nil
}

// all reports whether every element of a leaf page is a plain key and
// value that ok accepts.
func (p boltPage) all(ok func(k, v []byte) bool) bool {
	for i := range p.count {
		v, nested := p.leaf(i)
		if nested || !ok(p.key(i), v) {
			return false
		}
	}
	return true
}

func isRecord(k, v []byte) bool {
	if len(k) != 8 {
		return false
	}
	evs, err := decodeRecord(nil, v)
	for _, ev := range evs {
		if err == nil {
			_, err = decodeEvent(ev)
		}
	}
	return err == nil
}

func isDevice(k, v []byte) bool {
	_, err := decodeDevice(v)
	return err == nil && topic.ValidDeviceID(string(k)) == nil
}

func isMeta(k, _ []byte) bool {
	return bytes.Equal(k, metaIdentity) || bytes.Equal(k, metaFormat) || bytes.Equal(k, metaHighWater)
}

// record copies one event record found outside the tree: a record the
// walk copied stays; two differing copies found here are both dropped.
func (sv *salvager) record(b *bolt.Bucket, k, v []byte) error {
	id := getID(k)
	copied, seen := sv.found[id]
	have := b.Get(k)
	switch {
	case !seen && have == nil:
		n, _ := recordLen(v) // isRecord decoded it
		sv.found[id] = true
		sv.nRecords++
		sv.nEvents += int(n)
		return b.Put(k, bytes.Clone(v))
	case copied && !bytes.Equal(have, v):
		n, _ := recordLen(have)
		sv.found[id] = false
		sv.nRecords--
		sv.nEvents -= int(n)
		sv.conflicts++
		return b.Delete(k)
	}
	return nil
}

// device copies one device record the walk did not find, keeping the
// most recently seen copy.
func (sv *salvager) device(b *bolt.Bucket, k, v []byte) error {
	found, _ := decodeDevice(v)
	if have := b.Get(k); have != nil {
		old, _ := decodeDevice(have)
		if old.lastMs > found.lastMs || old.lastMs == found.lastMs && old.seq >= found.seq {
			return nil
		}
	} else {
		sv.nDevices++
	}
	return b.Put(k, bytes.Clone(v))
}

// meta copies the store identity, when the walk did not find it, and
// notes the id high-water mark.
func (sv *salvager) meta(tx *bolt.Tx, p boltPage) error {
	b, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	for i := range p.count {
		k := p.key(i)
		v, _ := p.leaf(i)
		if bytes.Equal(k, metaHighWater) {
			sv.ids.noteMark(v)
		}
		if bytes.Equal(k, metaIdentity) && validIdentity(v) && b.Get(k) == nil {
			if err := b.Put(k, bytes.Clone(v)); err != nil {
				return err
			}
		}
	}
	return nil
}
