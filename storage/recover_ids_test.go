package storage

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// damageInline breaks the page of bucket name that the data file at path
// stores inline in its list of buckets: the walk loses that bucket only.
func damageInline(t *testing.T, path string, name []byte) {
	t.Helper()
	bf := headerOf(t, path)
	root := bf.meta.root
	p, err := bf.page(root, 0)
	if err != nil || p.flags != flagLeaf {
		t.Fatalf("list of buckets on page %d: %+v, %v; want a leaf page", root, p, err)
	}
	for i := range p.count {
		v, nested := p.leaf(i)
		if !nested || !bytes.Equal(p.key(i), name) {
			continue
		}
		if byteOrder.Uint64(v) != 0 {
			t.Fatalf("bucket %s is not stored inline", name)
		}
		at := cap(p.data) - cap(v) + bucketHeaderSize + 8 // the type of the inline page
		overwrite(t, path, root, func(page []byte) { page[at], page[at+1] = 0, 0 })
		return
	}
	t.Fatalf("no bucket %s in the list of buckets", name)
}

// lastLeaf returns the page of the last leaf of bucket name of the data
// file at path.
func lastLeaf(t *testing.T, path string, name []byte) uint64 {
	t.Helper()
	bf := headerOf(t, path)
	id := bucketRoot(t, path, name)
	for depth := 1; ; depth++ {
		p, err := bf.page(id, depth)
		if err != nil {
			t.Fatal(err)
		}
		if p.flags == flagLeaf {
			return id
		}
		id = p.child(p.count - 1)
	}
}

// newIDAbove writes a reading into s and fails unless its id lies above
// last, the highest id the damaged file's store gave out.
func newIDAbove(t *testing.T, s *Store, last uint64) {
	t.Helper()
	if r := submitSync(t, s, reading("dev-new", t0, 1, "temp")); r.FirstID <= last {
		t.Fatalf("new write after recovery took id %d, want one above %d, the highest the store gave out", r.FirstID, last)
	}
}

// When the meta bucket (with the id high-water mark) and the newest
// events are lost and no copy of them is left, the topic index still
// names those events: new ids start above them.
func TestRecoverKeepsIDsAboveTheIndex(t *testing.T) {
	fx := filledFile(t, 2000)
	last := slices.Max(slices.Collect(maps.Keys(fx.data)))
	leaf := lastLeaf(t, fx.cfg.Path, bucketEvents)
	wipeUnreached(t, fx.cfg.Path)
	overwrite(t, fx.cfg.Path, leaf, damages["zeros"])
	damageInline(t, fx.cfg.Path, bucketMeta)
	openErr(t, fx.cfg)
	rep, cfg := recoverChecked(t, fx.cfg)
	if rep.DamageCount != 2 || rep.Events >= fx.events || rep.Identity != "" {
		t.Fatalf("report %+v: want the meta bucket and the newest events lost", rep)
	}
	if !slices.ContainsFunc(rep.Damage, func(d Damage) bool { return d.Bucket == "meta" }) {
		t.Fatalf("damage %v does not name the meta bucket", rep.Damage)
	}
	newIDAbove(t, openStore(t, cfg), last)
}

// When retention trimmed every event and the meta bucket is lost, the
// trimmed records and older copies of the meta bucket left on free pages
// still name the ids given out: new ids start above them, and the store
// identity is found again.
func TestRecoverKeepsIDsAboveTrimmedEvents(t *testing.T) {
	fx := filledFile(t, 300)
	clock := newFakeClock(t0.Add(3 * time.Hour))
	cfg := fx.cfg
	cfg.Now, cfg.MaxAge, cfg.TrimInterval = clock.Now, time.Hour, 5*time.Millisecond
	s := openStore(t, cfg)
	eventually(t, "every event to expire", func() bool { _, ok := s.OldestID(); return !ok })
	last := s.LastID()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	damageInline(t, fx.cfg.Path, bucketMeta)
	openErr(t, fx.cfg)
	rep, cfg := recoverChecked(t, fx.cfg)
	s = openStore(t, cfg)
	newIDAbove(t, s, last)
	if rep.DamageCount != 1 || rep.Damage[0].Bucket != "meta" || rep.Events != 0 ||
		!strings.Contains(rep.Damage[0].String(), "the store identity, layout version and id high-water mark") {
		t.Fatalf("report %+v: want the meta bucket lost, named, and no event", rep)
	}
	// The last commit left the list of buckets it replaced, with the meta
	// bucket inline, on a free page: the identity comes back from there.
	if rep.Identity == "" || s.IDs().Identity() != rep.Identity {
		t.Fatalf("identity %q reported, %q in the new file; want the one found again", rep.Identity, s.IDs().Identity())
	}
}
