package storage

import "github.com/telehub/telehub/bridge"

// MaxSeqGap is the largest distance between a device's seq and the last
// stored seq of its epoch that can still be the same counter. A seq further
// away, above or below, starts a new epoch: no device sends more than this
// many readings between a reading and its resend, and a seq such as 2^64-1
// sent once must not make every later reading of the device a duplicate.
const MaxSeqGap = 1 << 20

// seqVerdict is what the seq of a write means for its device's epoch.
type seqVerdict uint8

const (
	seqFirst     seqVerdict = iota // the device has no seq stored yet: store
	seqNext                        // above the last stored seq of the epoch: store
	seqEpoch                       // a new epoch starts: store and count
	seqDuplicate                   // already stored in this epoch: ack only
	seqFill                        // a peer hub's reading below the last seq, not stored yet: store
)

// seqVerdict classifies a write with a seq against the device's epoch
// state: the last stored seq, boot and device time.
//
//   - a boot other than the epoch's starts a new epoch;
//   - a seq more than MaxSeqGap away from the last one starts a new epoch;
//   - a seq above the last one continues the epoch;
//   - without a boot, a lower (or equal) seq whose device time is later
//     than that of the last stored write starts a new epoch: a resend keeps
//     its original time;
//   - a lower (or equal) seq that a peer hub forwarded, and that is not in
//     the epoch's stored seq ranges, fills a hole: the origin hub stored
//     it before the device moved to this hub;
//   - anything else is a duplicate.
//
// A device's own resend never fills a hole: for it, a seq not above the
// epoch's last one is a duplicate.
func (r *deviceRec) seqVerdict(wr *bridge.Write) seqVerdict {
	switch {
	case !r.hasSeq:
		return seqFirst
	case wr.Boot != "" && wr.Boot != r.boot:
		return seqEpoch
	case seqDistance(wr.Seq, r.seq) > MaxSeqGap:
		return seqEpoch
	case wr.Seq > r.seq:
		return seqNext
	case wr.Boot == "" && r.hasTS && !wr.DeviceTime.IsZero() && wr.DeviceTime.UnixMicro() > r.tsMicro:
		return seqEpoch
	case wr.Origin != nil && !r.ranges.contains(wr.Seq):
		return seqFill
	}
	return seqDuplicate
}

// seqDistance returns |a-b| without overflow.
func seqDistance(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return b - a
}

// advance records a stored write's seq, boot and device time as the
// epoch's last, and its seq in the epoch's ranges (a new epoch starts them
// anew); a write that continues the epoch without a boot keeps the epoch's
// boot. A fill only adds its seq to the ranges. It reports whether the
// ranges merged two of theirs to stay bounded.
func (r *deviceRec) advance(wr *bridge.Write, v seqVerdict) (merged bool) {
	if v == seqFirst || v == seqEpoch {
		r.ranges = seqRanges{{wr.Seq, wr.Seq}}
	} else {
		r.ranges, merged = r.ranges.add(wr.Seq)
	}
	if v == seqFill {
		return merged
	}
	r.seq, r.hasSeq = wr.Seq, true
	if v != seqNext || wr.Boot != "" {
		r.boot = wr.Boot
	}
	r.hasTS = !wr.DeviceTime.IsZero()
	r.tsMicro = 0
	if r.hasTS {
		r.tsMicro = wr.DeviceTime.UnixMicro()
	}
	if v == seqEpoch {
		r.restarts++
	}
	return merged
}
