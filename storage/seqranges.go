package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// maxSeqRanges bounds the seq ranges a device record keeps for its epoch.
// Past it, the two lowest ranges merge into one (see seqRanges.add).
const maxSeqRanges = 32

// seqRange is a closed interval [lo, hi] of stored seqs.
type seqRange struct{ lo, hi uint64 }

// seqRanges is the set of seqs stored in a device's current epoch: sorted,
// disjoint and not adjacent (a gap of at least one seq between two ranges),
// at most maxSeqRanges of them. Its highest seq is the epoch's last one.
// A merge of two ranges over the bound treats the seqs between them as
// stored: that can only refuse a late reading from a peer hub, never store
// one twice.
//
// The slice may be shared with a committed record: add never changes it in
// place.
type seqRanges []seqRange

// contains reports whether seq is in one of the ranges.
func (rs seqRanges) contains(seq uint64) bool {
	i, found := rs.search(seq)
	return found || i < len(rs) && rs[i].lo <= seq
}

// search returns the index of the first range whose hi is at or above seq,
// and whether that hi is seq.
func (rs seqRanges) search(seq uint64) (int, bool) {
	return slices.BinarySearchFunc(rs, seq, func(r seqRange, seq uint64) int {
		switch {
		case r.hi < seq:
			return -1
		case r.hi > seq:
			return 1
		}
		return 0
	})
}

// add returns the ranges with seq added, in a new slice, and whether two
// ranges had to merge to stay within maxSeqRanges.
func (rs seqRanges) add(seq uint64) (seqRanges, bool) {
	i, found := rs.search(seq)
	if found || i < len(rs) && rs[i].lo <= seq {
		return rs, false
	}
	out := slices.Clone(rs)
	joinsBelow := i > 0 && out[i-1].hi+1 == seq
	joinsAbove := i < len(out) && out[i].lo-1 == seq
	switch {
	case joinsBelow && joinsAbove:
		out[i-1].hi = out[i].hi
		return slices.Delete(out, i, i+1), false
	case joinsBelow:
		out[i-1].hi = seq
		return out, false
	case joinsAbove:
		out[i].lo = seq
		return out, false
	}
	out = slices.Insert(out, i, seqRange{seq, seq})
	if len(out) <= maxSeqRanges {
		return out, false
	}
	out[1].lo = out[0].lo
	return slices.Delete(out, 0, 1), true
}

// errSeqRanges: encoded seq ranges that are not sorted, disjoint and
// apart, or too many.
var errSeqRanges = errors.New("bad seq ranges")

// Seq ranges are encoded as their count (uvarint), then per range the
// distance from the previous range's hi (its lo for the first: the lo
// itself) and hi-lo (uvarints). A distance below 2 would make ranges
// touch, so it is corrupt.

// appendSeqRanges appends the encoded ranges to b.
func appendSeqRanges(b []byte, rs seqRanges) []byte {
	b = binary.AppendUvarint(b, uint64(len(rs)))
	var prev uint64
	for i, r := range rs {
		gap := r.lo
		if i > 0 {
			gap = r.lo - prev
		}
		b = binary.AppendUvarint(b, gap)
		b = binary.AppendUvarint(b, r.hi-r.lo)
		prev = r.hi
	}
	return b
}

// seqRanges reads ranges written by appendSeqRanges.
func (d *decoder) seqRanges() seqRanges {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > maxSeqRanges {
		d.err = fmt.Errorf("%w: %d ranges", errSeqRanges, n)
		return nil
	}
	var rs seqRanges
	for i := range n {
		gap, width := d.uvarint(), d.uvarint()
		if d.err != nil {
			return nil
		}
		r, ok := nextSeqRange(rs, i == 0, gap, width)
		if !ok {
			d.err = fmt.Errorf("%w: range %d", errSeqRanges, i)
			return nil
		}
		rs = append(rs, r)
	}
	return rs
}

// nextSeqRange builds the range that follows rs from its encoded gap and
// width, and reports whether it fits: above the previous one and apart
// from it, without overflow.
func nextSeqRange(rs seqRanges, first bool, gap, width uint64) (seqRange, bool) {
	lo := gap
	if !first {
		prev := rs[len(rs)-1].hi
		if gap < 2 || gap > ^uint64(0)-prev {
			return seqRange{}, false
		}
		lo = prev + gap
	}
	if width > ^uint64(0)-lo {
		return seqRange{}, false
	}
	return seqRange{lo, lo + width}, true
}
