package storage

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// maxDamageKept bounds the damaged parts a walk keeps to describe; the
// walk still counts all of them.
const maxDamageKept = 1000

// Damage is a part of a data file that cannot be read.
type Damage struct {
	// Page is the page that cannot be read: a page of the file, or the
	// page holding a bucket stored inline.
	Page uint64
	// Bucket names the bucket the page belongs to, "" for the root.
	Bucket string
	// From and To bound the keys the damaged part held: From included, To
	// not; nil when the bound is unknown.
	From, To []byte
	// Reason says what is wrong with the page.
	Reason string
}

// String describes the damage and what it held, e.g.
// "page 1000 (events 1201..1450): page 1000 says it is page 7".
func (d Damage) String() string {
	return fmt.Sprintf("page %d (%s): %s", d.Page, d.Held(), d.Reason)
}

// Held describes what the damaged part held, as far as the keys around it
// tell.
func (d Damage) Held() string {
	switch d.Bucket {
	case "":
		return "the list of buckets"
	case string(bucketEvents):
		return "events " + idBounds(d.From, d.To)
	case string(bucketDevices):
		return "device records " + keyBounds(d.From, d.To, quoteKey)
	case string(bucketState):
		return "latest states " + keyBounds(d.From, d.To, stateName)
	case string(bucketMeta):
		return "the store identity, layout version and id high-water mark"
	case string(bucketDeleted):
		return "sessions of deleted devices " + keyBounds(d.From, d.To, quoteKey)
	case string(bucketOutbox):
		return "messages waiting to be forwarded to the peer hubs, of events " + idBounds(d.From, d.To)
	case string(bucketOrigins):
		return "origin ids of peer hubs' devices " + keyBounds(d.From, d.To, originName)
	}
	if held := heldCommands(d.Bucket, d.From, d.To); held != "" {
		return held
	}
	return "keys of bucket " + d.Bucket + " " + keyBounds(d.From, d.To, quoteKey)
}

// idBounds describes a range of event keys: the ids From..To-1.
func idBounds(from, to []byte) string {
	lo, hi := "the first", "the last"
	if len(from) == 8 {
		lo = fmt.Sprint(getID(from))
	}
	if len(to) == 8 && getID(to) > 0 {
		hi = fmt.Sprint(getID(to) - 1)
	}
	return lo + ".." + hi
}

// keyBounds describes a range of keys From..To (To excluded).
func keyBounds(from, to []byte, name func([]byte) string) string {
	lo, hi := "the first", "the last"
	if from != nil {
		lo = name(from)
	}
	if to != nil {
		hi = "before " + name(to)
	}
	return "from " + lo + " to " + hi
}

func quoteKey(k []byte) string { return fmt.Sprintf("%q", k) }

// stateName names a state key as "device/metric".
func stateName(k []byte) string {
	d := decoder{b: k}
	dev := d.bytes()
	if d.err != nil {
		return quoteKey(k)
	}
	return fmt.Sprintf("%q", string(dev)+"/"+string(d.b))
}

// boltWalk visits every bucket and key of a data file that can be read,
// in key order, and records the parts that cannot.
type boltWalk struct {
	bf *boltFile
	// open, when set, is called on entering a bucket, before its keys;
	// path names it from the top, seq is the bucket's sequence.
	open func(path [][]byte, seq uint64) error
	// put, when set, is called with each key and value; they are valid
	// only during the call.
	put func(path [][]byte, k, v []byte) error

	path    [][]byte
	damage  []Damage // the first maxDamageKept
	damaged int      // all of them
}

// run walks the whole file from its root bucket. It stops only on a read
// error or an error of open or put; damage is recorded and skipped.
func (w *boltWalk) run() error {
	return w.tree(w.bf.meta.root, nil, nil, 0)
}

// lost records the part of the file at page id, keys from..to, as damaged.
func (w *boltWalk) lost(id uint64, from, to []byte, reason string) {
	w.damaged++
	if len(w.damage) == maxDamageKept {
		return
	}
	names := make([]string, len(w.path))
	for i, p := range w.path {
		names[i] = string(p)
	}
	w.damage = append(w.damage, Damage{Page: id, Bucket: strings.Join(names, "/"),
		From: bytes.Clone(from), To: bytes.Clone(to), Reason: reason})
}

// tree walks the subtree at page id, whose keys lie in [lo, hi) (nil: no
// bound).
func (w *boltWalk) tree(id uint64, lo, hi []byte, depth int) error {
	if depth > maxTreeDepth {
		w.lost(id, lo, hi, "the tree is deeper than a sound file's")
		return nil
	}
	p, err := w.bf.page(id, depth)
	if err != nil {
		if !errors.Is(err, errNotPage) {
			return err
		}
		w.lost(id, lo, hi, strings.TrimPrefix(err.Error(), errNotPage.Error()+": "))
		return nil
	}
	if p.count > 0 && (lo != nil && bytes.Compare(p.key(0), lo) < 0 ||
		hi != nil && bytes.Compare(p.key(p.count-1), hi) >= 0) {
		w.lost(id, lo, hi, fmt.Sprintf("page %d holds keys outside the range its parent gives it", id))
		return nil
	}
	if p.flags == flagBranch {
		return w.branch(p, hi, depth)
	}
	return w.leaves(p, depth)
}

// branch walks the children of a branch page.
func (w *boltWalk) branch(p boltPage, hi []byte, depth int) error {
	for i := range p.count {
		next := hi
		if i+1 < p.count {
			next = p.key(i + 1)
		}
		if err := w.tree(p.child(i), p.key(i), next, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// leaves visits the keys of a leaf page, entering nested buckets.
func (w *boltWalk) leaves(p boltPage, depth int) error {
	for i := range p.count {
		k := p.key(i)
		v, nested := p.leaf(i)
		var err error
		if nested {
			err = w.bucket(p.id, k, v, depth)
		} else if w.put != nil {
			err = w.put(w.path, k, v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// bucket walks the nested bucket named k whose header is v, found on page
// id.
func (w *boltWalk) bucket(id uint64, k, v []byte, depth int) error {
	w.path = append(w.path, k)
	defer func() { w.path = w.path[:len(w.path)-1] }()
	if len(v) < bucketHeaderSize {
		w.lost(id, nil, nil, fmt.Sprintf("the header of bucket %q on page %d is cut short", k, id))
		return nil
	}
	if w.open != nil {
		if err := w.open(w.path, byteOrder.Uint64(v[8:])); err != nil {
			return err
		}
	}
	if root := byteOrder.Uint64(v); root != 0 {
		return w.tree(root, nil, nil, depth+1)
	}
	p, err := inlinePage(v[bucketHeaderSize:])
	if err != nil {
		w.lost(id, nil, nil, fmt.Sprintf("bucket %q stored on page %d: %v", k, id, err))
		return nil
	}
	p.id = id
	return w.leaves(p, depth+1)
}
