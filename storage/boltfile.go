package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/bits"
)

// This file reads a bbolt data file (format version 2) with plain reads,
// checking every offset and page number itself. bbolt maps the file into
// memory and trusts what it finds there: on a damaged file it panics, on
// a goroutine of its own, or faults on memory past the end of a short
// file, and neither can be recovered. Reading here first turns both into
// errors that name the damaged page.

// Layout constants of bbolt's format.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	boltNoFreelist   = ^uint64(0)
	pageHeaderSize   = 16 // id u64, flags u16, count u16, overflow u32
	pageElemSize     = 16 // leaf: flags, pos, ksize, vsize u32; branch: pos, ksize u32, pgid u64
	metaChecksummed  = 56 // the meta fields before the checksum
	bucketHeaderSize = 16 // root pgid u64, sequence u64
	flagBranch       = 0x01
	flagLeaf         = 0x02
	flagFreelist     = 0x10
	leafBucketFlag   = 0x01
	// maxTreeDepth bounds the walk: a real tree of 4 KiB pages is a
	// handful of levels deep; a deeper one loops through damaged pages.
	maxTreeDepth = 64
)

// byteOrder is the order bbolt writes its integers in: the machine's own.
var byteOrder = binary.NativeEndian

// errNotPage: a page read from the file is not what its parent says.
var errNotPage = errors.New("not a valid page")

// boltMeta is the part of a meta page the reader uses.
type boltMeta struct {
	pageSize uint32
	root     uint64 // page of the root bucket
	freelist uint64 // page of the freelist, boltNoFreelist when not kept
	hwm      uint64 // pages 0..hwm-1 are in use or free
	txid     uint64
}

// parseMeta decodes and validates the meta page at the start of p.
func parseMeta(p []byte) (boltMeta, error) {
	if len(p) < pageHeaderSize+metaChecksummed+8 {
		return boltMeta{}, errors.New("too short")
	}
	m := p[pageHeaderSize:]
	switch {
	case byteOrder.Uint32(m[0:]) != boltMagic:
		return boltMeta{}, errors.New("not a bbolt meta page")
	case byteOrder.Uint32(m[4:]) != boltVersion:
		return boltMeta{}, fmt.Errorf("format version %d", byteOrder.Uint32(m[4:]))
	}
	h := fnv.New64a()
	h.Write(m[:metaChecksummed])
	if h.Sum64() != byteOrder.Uint64(m[metaChecksummed:]) {
		return boltMeta{}, errors.New("checksum mismatch")
	}
	meta := boltMeta{
		pageSize: byteOrder.Uint32(m[8:]),
		root:     byteOrder.Uint64(m[16:]),
		freelist: byteOrder.Uint64(m[32:]),
		hwm:      byteOrder.Uint64(m[40:]),
		txid:     byteOrder.Uint64(m[48:]),
	}
	return meta, meta.valid()
}

// valid checks the fields a checksum cannot vouch for the sense of.
func (m boltMeta) valid() error {
	switch {
	case m.pageSize < 512 || m.pageSize > 1<<20 || bits.OnesCount32(m.pageSize) != 1:
		return fmt.Errorf("page size %d", m.pageSize)
	case m.root < 2 || m.root >= m.hwm:
		return fmt.Errorf("root page %d outside 2..%d", m.root, m.hwm)
	case m.freelist != boltNoFreelist && (m.freelist < 2 || m.freelist >= m.hwm):
		return fmt.Errorf("freelist page %d outside 2..%d", m.freelist, m.hwm)
	}
	return nil
}

// boltFile reads pages of one data file.
type boltFile struct {
	r        io.ReaderAt
	size     int64
	pageSize int
	meta     boltMeta
	// metaNote says which meta page was unreadable when bbolt would fall
	// back to the other one, "" when both are sound.
	metaNote string
	seen     []uint64 // bit set of the pages reached
	bufs     [][]byte // one page buffer per tree depth
}

// openBoltFile reads the meta pages of the file r of size bytes and picks
// the one bbolt would use: the later valid one.
func openBoltFile(r io.ReaderAt, size int64) (*boltFile, error) {
	if size < 1024 {
		return nil, fmt.Errorf("%d bytes is too short for a data file", size)
	}
	m0, err0 := readMeta(r, size, 0)
	pageSize := int64(m0.pageSize)
	if err0 != nil {
		pageSize = findPageSize(r, size)
	}
	var m1 boltMeta
	err1 := errors.New("not found")
	if pageSize > 0 {
		m1, err1 = readMeta(r, size, pageSize)
	}
	bf := &boltFile{r: r, size: size}
	switch {
	case err0 != nil && err1 != nil:
		return nil, fmt.Errorf("neither header page can be read (page 0: %v; page 1: %v)", err0, err1)
	case err0 != nil:
		bf.meta, bf.metaNote = m1, fmt.Sprintf("header page 0 cannot be read (%v); page 1 is used", err0)
	case err1 != nil:
		bf.meta, bf.metaNote = m0, fmt.Sprintf("header page 1 cannot be read (%v); page 0 is used", err1)
	case m1.txid > m0.txid:
		bf.meta = m1
	default:
		bf.meta = m0
	}
	bf.pageSize = int(bf.meta.pageSize)
	bf.seen = make([]uint64, (bf.meta.hwm+63)/64)
	return bf, nil
}

// readMeta reads and parses the meta page at off.
func readMeta(r io.ReaderAt, size, off int64) (boltMeta, error) {
	var buf [pageHeaderSize + metaChecksummed + 8]byte
	if off+int64(len(buf)) > size {
		return boltMeta{}, errors.New("past the end of the file")
	}
	if _, err := r.ReadAt(buf[:], off); err != nil {
		return boltMeta{}, err
	}
	return parseMeta(buf[:])
}

// findPageSize looks for the second meta page where bbolt would, when the
// first cannot tell the page size; 0 when there is none.
func findPageSize(r io.ReaderAt, size int64) int64 {
	for ps := int64(1024); ps <= 1<<24 && ps < size-1024; ps <<= 1 {
		if m, err := readMeta(r, size, ps); err == nil && int64(m.pageSize) == ps {
			return ps
		}
	}
	return 0
}

// pagesEnd is the size the file must have to hold every page below the
// high-water mark.
func (bf *boltFile) pagesEnd() int64 { return int64(bf.meta.hwm) * int64(bf.pageSize) }

// boltPage is a checked branch or leaf page: every element lies inside
// data, so the accessors below cannot go out of bounds.
type boltPage struct {
	id    uint64
	flags uint16
	count int
	data  []byte // the page with its overflow pages
}

// page reads page id into the buffer of depth and checks it: inside the
// file and below the high-water mark, reached once, naming itself id, a
// branch or leaf page whose elements lie inside it.
func (bf *boltFile) page(id uint64, depth int) (boltPage, error) {
	if id < 2 || id >= bf.meta.hwm {
		return boltPage{}, fmt.Errorf("%w: page number %d is outside 2..%d", errNotPage, id, bf.meta.hwm-1)
	}
	if bf.seen[id/64]&(1<<(id%64)) != 0 {
		return boltPage{}, fmt.Errorf("%w: page %d is reached twice", errNotPage, id)
	}
	buf, err := bf.read(id, 1, depth)
	if err != nil {
		return boltPage{}, err
	}
	p := boltPage{
		id:    byteOrder.Uint64(buf),
		flags: byteOrder.Uint16(buf[8:]),
		count: int(byteOrder.Uint16(buf[10:])),
	}
	overflow := uint64(byteOrder.Uint32(buf[12:]))
	switch {
	case p.id != id:
		return boltPage{}, fmt.Errorf("%w: page %d says it is page %d", errNotPage, id, p.id)
	case p.flags != flagBranch && p.flags != flagLeaf:
		return boltPage{}, fmt.Errorf("%w: page %d has type %#x, not a branch or leaf", errNotPage, id, p.flags)
	case overflow >= bf.meta.hwm-id:
		return boltPage{}, fmt.Errorf("%w: page %d runs past the high-water mark", errNotPage, id)
	}
	if overflow > 0 {
		if buf, err = bf.read(id, overflow+1, depth); err != nil {
			return boltPage{}, err
		}
	}
	p.data = buf
	if err := p.check(); err != nil {
		return boltPage{}, fmt.Errorf("%w: page %d: %v", errNotPage, id, err)
	}
	for i := id; i <= id+overflow; i++ {
		bf.seen[i/64] |= 1 << (i % 64)
	}
	return p, nil
}

// read reads n pages from page id into the buffer of depth.
func (bf *boltFile) read(id, n uint64, depth int) ([]byte, error) {
	off, size := int64(id)*int64(bf.pageSize), int64(n)*int64(bf.pageSize)
	if off+size > bf.size {
		return nil, fmt.Errorf("%w: page %d lies past the end of the file (%d bytes)", errNotPage, id, bf.size)
	}
	for len(bf.bufs) <= depth {
		bf.bufs = append(bf.bufs, nil)
	}
	if int64(cap(bf.bufs[depth])) < size {
		bf.bufs[depth] = make([]byte, size)
	}
	buf := bf.bufs[depth][:size]
	if _, err := bf.r.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("read page %d: %w", id, err)
	}
	return buf, nil
}

// inlinePage returns the page stored in the value of an inline bucket,
// checked like a page of the file.
func inlinePage(v []byte) (boltPage, error) {
	p := boltPage{data: v}
	if len(v) < pageHeaderSize {
		return p, errors.New("inline bucket too short")
	}
	p.flags, p.count = byteOrder.Uint16(v[8:]), int(byteOrder.Uint16(v[10:]))
	if p.flags != flagLeaf {
		return p, fmt.Errorf("inline bucket page has type %#x", p.flags)
	}
	return p, p.check()
}

// check verifies that the elements, their keys and values lie inside the
// page and that the keys are in strictly increasing order.
func (p boltPage) check() error {
	if pageHeaderSize+p.count*pageElemSize > len(p.data) {
		return fmt.Errorf("%d elements do not fit", p.count)
	}
	var prev []byte
	for i := range p.count {
		off := pageHeaderSize + i*pageElemSize
		e := p.data[off:]
		var start, end uint64
		if p.flags == flagLeaf {
			start = uint64(off) + uint64(byteOrder.Uint32(e[4:]))
			end = start + uint64(byteOrder.Uint32(e[8:])) + uint64(byteOrder.Uint32(e[12:]))
		} else {
			start = uint64(off) + uint64(byteOrder.Uint32(e[0:]))
			end = start + uint64(byteOrder.Uint32(e[4:]))
		}
		if end > uint64(len(p.data)) {
			return fmt.Errorf("element %d lies outside the page", i)
		}
		k := p.key(i)
		if i > 0 && bytes.Compare(prev, k) >= 0 {
			return fmt.Errorf("keys out of order at element %d", i)
		}
		prev = k
	}
	return nil
}

// key returns the key of element i.
func (p boltPage) key(i int) []byte {
	off := pageHeaderSize + i*pageElemSize
	e := p.data[off:]
	if p.flags == flagLeaf {
		start := off + int(byteOrder.Uint32(e[4:]))
		return p.data[start : start+int(byteOrder.Uint32(e[8:]))]
	}
	start := off + int(byteOrder.Uint32(e[0:]))
	return p.data[start : start+int(byteOrder.Uint32(e[4:]))]
}

// leaf returns element i of a leaf page: its value and whether it is a
// nested bucket.
func (p boltPage) leaf(i int) (v []byte, bucket bool) {
	off := pageHeaderSize + i*pageElemSize
	e := p.data[off:]
	start := off + int(byteOrder.Uint32(e[4:])) + int(byteOrder.Uint32(e[8:]))
	return p.data[start : start+int(byteOrder.Uint32(e[12:]))], byteOrder.Uint32(e)&leafBucketFlag != 0
}

// child returns the page number element i of a branch page points to.
func (p boltPage) child(i int) uint64 {
	return byteOrder.Uint64(p.data[pageHeaderSize+i*pageElemSize+8:])
}
