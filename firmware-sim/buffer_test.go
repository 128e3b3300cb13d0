package firmwaresim

import "testing"

func pushSeqs(b *sfBuffer, from, to uint64) (evicted []uint64) {
	for s := from; s < to; s++ {
		if old, ok := b.Push(entry{seq: s}); ok {
			evicted = append(evicted, old.seq)
		}
	}
	return evicted
}

func drainSend(b *sfBuffer) []uint64 {
	var out []uint64
	for e := b.NextToSend(); e != nil; e = b.NextToSend() {
		e.sends++
		out = append(out, e.seq)
	}
	return out
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestBufferInOrderResendKeepsSeq(t *testing.T) {
	b := newBuffer(8)
	pushSeqs(b, 10, 15)
	if got := drainSend(b); !equalSeqs(got, []uint64{10, 11, 12, 13, 14}) {
		t.Fatalf("first send %v", got)
	}
	if b.HasUnsent() {
		t.Fatal("HasUnsent after sending everything")
	}
	for _, s := range []uint64{10, 12} { // 12 acked out of order
		if _, ok := b.Complete(s); !ok {
			t.Fatalf("Complete(%d) not found", s)
		}
	}
	b.Rewind() // reconnect
	if got := drainSend(b); !equalSeqs(got, []uint64{11, 13, 14}) {
		t.Fatalf("resend %v, want 11 13 14 with their original seqs", got)
	}
	if b.Len() != 4 || b.Pending() != 3 {
		t.Fatalf("Len %d Pending %d, want 4 and 3", b.Len(), b.Pending())
	}
	b.Complete(11)
	if b.Len() != 2 {
		t.Fatalf("Len %d after head acks, want 2 (13, 14)", b.Len())
	}
}

func TestBufferBoundedEvictsOldest(t *testing.T) {
	tests := []struct {
		name        string
		max         int
		push        uint64
		wantEvicted []uint64
		wantFirst   uint64
	}{
		{"under the bound", 4, 3, nil, 0},
		{"at the bound", 4, 4, nil, 0},
		{"over by two", 4, 6, []uint64{0, 1}, 2},
		{"bound of one", 1, 3, []uint64{0, 1}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBuffer(tt.max)
			ev := pushSeqs(b, 0, tt.push)
			if !equalSeqs(ev, tt.wantEvicted) {
				t.Fatalf("evicted %v, want %v", ev, tt.wantEvicted)
			}
			if b.Len() > tt.max {
				t.Fatalf("Len %d over max %d", b.Len(), tt.max)
			}
			if got := drainSend(b); got[0] != tt.wantFirst {
				t.Fatalf("first to send %d, want %d", got[0], tt.wantFirst)
			}
		})
	}
}

func TestBufferCursorSurvivesEviction(t *testing.T) {
	b := newBuffer(3)
	pushSeqs(b, 0, 3)
	b.NextToSend()    // 0 sent
	pushSeqs(b, 3, 5) // evicts 0 and 1
	if got := drainSend(b); !equalSeqs(got, []uint64{2, 3, 4}) {
		t.Fatalf("sent %v, want 2 3 4", got)
	}
}

func TestBufferCompleteUnknown(t *testing.T) {
	b := newBuffer(4)
	if _, ok := b.Complete(1); ok {
		t.Fatal("Complete on empty buffer")
	}
	pushSeqs(b, 5, 7)
	for _, s := range []uint64{4, 7, 100} {
		if _, ok := b.Complete(s); ok {
			t.Fatalf("Complete(%d) of a seq not held", s)
		}
	}
	b.Push(entry{seq: 7})
	b.Complete(6)
	if _, ok := b.Complete(6); ok {
		t.Fatal("Complete twice")
	}
	if b.Get(5) == nil || b.Get(6) == nil || b.Get(8) != nil {
		t.Fatal("Get out of step with contents")
	}
}

func TestBufferGrowsLazily(t *testing.T) {
	b := newBuffer(1 << 20)
	pushSeqs(b, 0, 3)
	if len(b.items) > 4 {
		t.Fatalf("buffer of 3 entries holds %d slots", len(b.items))
	}
	b.Complete(0)
	pushSeqs(b, 3, 100) // wraps, then grows
	if got := drainSend(b); len(got) != 99 || got[0] != 1 || got[98] != 99 {
		t.Fatalf("after growth sent %d entries from %d", len(got), got[0])
	}
}

func BenchmarkBufferPushSendAck(b *testing.B) {
	buf := newBuffer(1024)
	b.ReportAllocs()
	for i := uint64(0); b.Loop(); i++ {
		buf.Push(entry{seq: i})
		buf.NextToSend()
		buf.Complete(i)
	}
}
