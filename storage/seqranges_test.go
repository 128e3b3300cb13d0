package storage

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/metrics"
)

// seqWrite is a reading of d1 with seq; from a peer hub "a" when origin is
// not zero.
func seqWrite(seq, origin uint64) *bridge.Write {
	w := withSeq(reading("d1", t0, int(seq), "temp"), seq)
	if origin != 0 {
		w.Origin = &bridge.Origin{Node: "a", ID: origin, EventIDs: []string{"x"}}
	}
	return w
}

// submitAll submits the writes at once (they commit in a few batches) and
// returns how many were duplicates.
func submitAll(t *testing.T, s *Store, ws []*bridge.Write) (dups int) {
	t.Helper()
	chs := make([]<-chan bridge.Result, len(ws))
	for i, w := range ws {
		chs[i] = submitAsync(t, s, w)
	}
	for i, ch := range chs {
		r := wait(t, ch)
		if r.Err != nil {
			t.Fatalf("write %d: %v", i, r.Err)
		}
		if r.Duplicate {
			dups++
		}
	}
	return dups
}

// seqRun returns writes of the seqs from..to, from a peer when origin is
// not zero (origin ids then count up from origin).
func seqRun(from, to, origin uint64) []*bridge.Write {
	var ws []*bridge.Write
	for seq := from; seq <= to; seq++ {
		o := origin
		if origin != 0 {
			o = origin + seq - from
		}
		ws = append(ws, seqWrite(seq, o))
	}
	return ws
}

// storedSeqs counts the stored readings of d1 per seq (their value).
func storedSeqs(t *testing.T, s *Store) map[int]int {
	t.Helper()
	n := make(map[int]int)
	for _, r := range scanAll(t, s) {
		var ev struct{ Value int }
		if err := json.Unmarshal(r.Data, &ev); err != nil {
			t.Fatalf("record %d: %v", r.ID, err)
		}
		n[ev.Value]++
	}
	return n
}

// The device moved from hub a to this hub before a forwarded what it had
// acknowledged: a's late readings fill the hole once; resends from a or
// from the device are duplicates.
func TestSeqFillFromPeer(t *testing.T) {
	met := metrics.New("test")
	cfg := testConfig(t)
	cfg.Metrics = met
	s := openStore(t, cfg)
	if dups := submitAll(t, s, seqRun(8, 3000, 0)); dups != 0 {
		t.Fatalf("device readings 8..3000: %d duplicates", dups)
	}
	if dups := submitAll(t, s, seqRun(1, 7, 100)); dups != 0 {
		t.Fatalf("late peer readings 1..7: %d duplicates, want none", dups)
	}
	if dups := submitAll(t, s, seqRun(1, 7, 200)); dups != 7 {
		t.Errorf("peer resend of 1..7: %d duplicates, want 7", dups)
	}
	if r := submitSync(t, s, seqWrite(5, 0)); !r.Duplicate {
		t.Errorf("device resend of 5: %+v, want a duplicate", r)
	}
	if r := submitSync(t, s, seqWrite(3001, 0)); r.Duplicate {
		t.Errorf("device seq 3001: %+v, want stored", r)
	}
	n := storedSeqs(t, s)
	for seq := 1; seq <= 3001; seq++ {
		if n[seq] != 1 {
			t.Fatalf("seq %d stored %d times, want once", seq, n[seq])
		}
	}
	if got := testutil.ToFloat64(met.SeqFills); got != 7 {
		t.Errorf("seq fills %v, want 7", got)
	}
}

// A reading both resent by the device and forwarded by its first hub is
// stored once, whichever arrives first.
func TestSeqResendAndForwardStoredOnce(t *testing.T) {
	tests := []struct {
		name  string
		steps [][]*bridge.Write
	}{
		{"device resend first", [][]*bridge.Write{seqRun(3, 10, 0), seqRun(1, 7, 50)}},
		{"forward first", [][]*bridge.Write{seqRun(1, 7, 50), seqRun(3, 10, 0)}},
		{"forward between", [][]*bridge.Write{seqRun(5, 6, 0), seqRun(1, 7, 50), seqRun(5, 10, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, testConfig(t))
			for _, ws := range tt.steps {
				for _, w := range ws {
					submitSync(t, s, w)
				}
			}
			n := storedSeqs(t, s)
			for seq := 1; seq <= 10; seq++ {
				if n[seq] != 1 {
					t.Errorf("seq %d stored %d times, want once", seq, n[seq])
				}
			}
		})
	}
}

// The stored seq ranges outlive a restart.
func TestSeqRangesSurviveReopen(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	submitAll(t, s, seqRun(8, 20, 0))
	submitSync(t, s, seqWrite(3, 1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, cfg)
	steps := []struct {
		w   *bridge.Write
		dup bool
	}{
		{seqWrite(3, 2), true},
		{seqWrite(2, 3), false},
		{seqWrite(4, 4), false},
		{seqWrite(15, 5), true},
		{seqWrite(1, 0), true},
		{seqWrite(21, 0), false},
	}
	for i, st := range steps {
		if r := submitSync(t, s, st.w); r.Duplicate != st.dup {
			t.Errorf("step %d (seq %d): duplicate %v, want %v", i, st.w.Seq, r.Duplicate, st.dup)
		}
	}
}

// A record written before the ranges existed reads as every seq up to its
// last stored: a peer's lower seq stays a duplicate, as it was.
func TestSeqRangesOfAnOldRecord(t *testing.T) {
	old := appendDevice(nil, &deviceRec{hasSeq: true, seq: 42, boot: "b1", metrics: []string{"temp"}})
	r, err := decodeDevice(old)
	if err != nil {
		t.Fatal(err)
	}
	if want := (seqRanges{{0, 42}}); !reflect.DeepEqual(r.ranges, want) {
		t.Errorf("ranges %v, want %v", r.ranges, want)
	}
	for _, seq := range []uint64{0, 1, 41, 42} {
		if v := r.seqVerdict(seqWrite(seq, 9)); v != seqDuplicate {
			t.Errorf("peer seq %d: verdict %d, want a duplicate", seq, v)
		}
	}
	if v := r.seqVerdict(seqWrite(43, 9)); v != seqNext {
		t.Errorf("peer seq 43: verdict %d, want next", v)
	}
}

// However many holes the peers fill, the ranges stay bounded and never
// lose a stored seq: a merge only makes more seqs count as stored.
func TestSeqRangesBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var rs seqRanges
	stored := make(map[uint64]bool)
	merges := 0
	for range 5000 {
		seq := rng.Uint64N(4000)
		if rs.contains(seq) {
			continue
		}
		if stored[seq] {
			t.Fatalf("seq %d stored twice", seq)
		}
		stored[seq] = true
		var merged bool
		rs, merged = rs.add(seq)
		if merged {
			merges++
		}
		checkSeqRanges(t, rs)
	}
	for seq := range stored {
		if !rs.contains(seq) {
			t.Fatalf("stored seq %d not in %v", seq, rs)
		}
	}
	if merges == 0 {
		t.Error("no merge: the bound was not exercised")
	}
}

func TestSeqRangesAdd(t *testing.T) {
	tests := []struct {
		name string
		rs   seqRanges
		seq  uint64
		want seqRanges
	}{
		{"empty", nil, 5, seqRanges{{5, 5}}},
		{"inside", seqRanges{{1, 9}}, 5, seqRanges{{1, 9}}},
		{"joins below", seqRanges{{1, 4}}, 5, seqRanges{{1, 5}}},
		{"joins above", seqRanges{{6, 9}}, 5, seqRanges{{5, 9}}},
		{"joins both", seqRanges{{1, 4}, {6, 9}}, 5, seqRanges{{1, 9}}},
		{"apart", seqRanges{{1, 2}, {8, 9}}, 5, seqRanges{{1, 2}, {5, 5}, {8, 9}}},
		{"zero", seqRanges{{1, 2}}, 0, seqRanges{{0, 2}}},
		{"max", seqRanges{{0, math.MaxUint64 - 1}}, math.MaxUint64, seqRanges{{0, math.MaxUint64}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := append(seqRanges(nil), tt.rs...)
			got, merged := tt.rs.add(tt.seq)
			if !reflect.DeepEqual(got, tt.want) || merged {
				t.Errorf("add(%d) = %v %v, want %v", tt.seq, got, merged, tt.want)
			}
			if !reflect.DeepEqual(tt.rs, before) {
				t.Errorf("add changed its receiver: %v, was %v", tt.rs, before)
			}
		})
	}
}

// checkSeqRanges fails unless rs is sorted, disjoint, apart and bounded.
func checkSeqRanges(t *testing.T, rs seqRanges) {
	t.Helper()
	if len(rs) > maxSeqRanges {
		t.Fatalf("%d ranges, over %d", len(rs), maxSeqRanges)
	}
	for i, r := range rs {
		if r.lo > r.hi || i > 0 && r.lo <= rs[i-1].hi+1 {
			t.Fatalf("ranges %v: range %d out of order", rs, i)
		}
	}
}

func TestDecodeSeqRangesRejects(t *testing.T) {
	rec := func(seq uint64, ranges []byte) []byte {
		v := appendDevice(nil, &deviceRec{hasSeq: seq != 0, seq: seq})
		return append(v, ranges...)
	}
	tests := []struct {
		name string
		v    []byte
	}{
		{"too many", rec(9, []byte{maxSeqRanges + 1})},
		{"none", rec(9, []byte{0})},
		{"without a seq", rec(0, []byte{1, 9, 0})},
		{"not ending at the seq", rec(9, []byte{1, 8, 0})},
		{"touching", rec(9, []byte{2, 1, 0, 1, 0})},
		{"overlapping", rec(9, []byte{2, 1, 4, 0, 0})},
		{"truncated", rec(9, []byte{2, 1, 0})},
		{"lo overflows", rec(9, append([]byte{2, 1, 0}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 0))},
		{"hi overflows", rec(9, append([]byte{1, 2}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r, err := decodeDevice(tt.v); err == nil {
				t.Errorf("decoded %+v", r)
			}
		})
	}
}

func FuzzDecodeSeqRanges(f *testing.F) {
	f.Add(appendSeqRanges(nil, seqRanges{{0, 42}}))
	f.Add(appendSeqRanges(nil, seqRanges{{1, 7}, {9, 9}, {20, math.MaxUint64}}))
	f.Add([]byte{})
	f.Add([]byte{2, 1, 0, 1, 0})
	f.Fuzz(func(t *testing.T, v []byte) {
		d := decoder{b: v}
		rs := d.seqRanges()
		if d.err != nil {
			return
		}
		checkSeqRanges(t, rs)
		again := decoder{b: appendSeqRanges(nil, rs)}
		if got := again.seqRanges(); again.err != nil || !reflect.DeepEqual(got, rs) || len(again.b) != 0 {
			t.Fatalf("re-encoded ranges decode to %v %v, want %v", got, again.err, rs)
		}
		for _, r := range rs {
			if !rs.contains(r.lo) || !rs.contains(r.hi) {
				t.Fatalf("%v does not contain its range %v", rs, r)
			}
		}
	})
}
