package firmwaresim

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// memLink is a link in memory that records what is sent and, when acking
// is set, confirms each reading as soon as it is sent.
type memLink struct {
	d       *device
	ep      int
	acking  bool
	fail    error
	sent    []uint64
	closed  bool
	acks    []string         // command ids confirmed
	results []*commandResult // command results sent
}

func (l *memLink) send(e *entry) error {
	if l.fail != nil {
		return l.fail
	}
	l.sent = append(l.sent, e.seq)
	if l.acking {
		l.d.onAck(l.ep, e.seq)
	}
	return nil
}
func (l *memLink) heartbeat() error    { return nil }
func (l *memLink) malformed(int) error { return nil }
func (l *memLink) confirms() bool      { return true }
func (l *memLink) drop()               { l.closed = true }
func (l *memLink) close()              { l.closed = true }
func (l *memLink) dead() bool          { return l.closed }
func (l *memLink) epoch() int          { return l.ep }
func (l *memLink) ackCommand(id string) error {
	l.acks = append(l.acks, id)
	return nil
}
func (l *memLink) answer(r *commandResult) error {
	if l.fail != nil {
		return l.fail
	}
	l.results = append(l.results, r)
	return nil
}

func newTestDevice(t testing.TB, cfg Config) *device {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.start = time.Now()
	d := s.devices[0]
	d.epochs = nil
	d.startEpoch(0, 1)
	return d
}

func TestDeviceResendsUnackedAfterReattach(t *testing.T) {
	d := newTestDevice(t, Config{Verify: true})
	first := &memLink{d: d}
	d.attach(first)
	for range 3 {
		d.takeReading(time.Now())
		d.flush()
	}
	d.onAck(0, 2) // out of order: 1 and 3 stay
	d.lost(first)
	d.takeReading(time.Now()) // offline: buffered
	d.flush()
	second := &memLink{d: d, acking: true}
	d.attach(second)
	if want := []uint64{1, 3, 4}; !equalSeqs(second.sent, want) {
		t.Fatalf("resent %v, want %v", second.sent, want)
	}
	st := &d.s.stats
	if st.resent.Load() != 2 || st.sent.Load() != 4 || st.acked.Load() != 4 || st.pending.Load() != 0 {
		t.Fatalf("resent %d sent %d acked %d pending %d", st.resent.Load(), st.sent.Load(), st.acked.Load(), st.pending.Load())
	}
	if d.log[0].flags&flagResent == 0 || d.log[1].flags&flagResent != 0 {
		t.Fatalf("verify log flags %v", d.log)
	}
}

func TestDeviceSendFailureDropsLink(t *testing.T) {
	d := newTestDevice(t, Config{})
	l := &memLink{d: d, fail: errors.New("broken pipe")}
	d.attach(l)
	d.takeReading(time.Now())
	d.flush()
	if !l.closed || d.currentLink() != nil {
		t.Fatal("failed send did not drop the link")
	}
	if d.s.stats.disconnects.Load() != 1 || d.sched.Len() == 0 {
		t.Fatal("no reconnect scheduled after the failed send")
	}
}

func TestDeviceLateLossOfOldLinkIgnored(t *testing.T) {
	d := newTestDevice(t, Config{})
	old, cur := &memLink{d: d}, &memLink{d: d}
	d.attach(old)
	d.lost(old)
	d.attach(cur)
	d.lost(old) // a late report about the old connection
	if d.currentLink() != cur {
		t.Fatal("late loss of the old link detached the new one")
	}
}

func TestDeviceAttachDeadLinkRetries(t *testing.T) {
	d := newTestDevice(t, Config{})
	l := &memLink{d: d, closed: true}
	before := d.sched.Len()
	d.attach(l)
	if d.currentLink() != nil || d.sched.Len() != before+1 {
		t.Fatal("a link that died before attach was used, or no retry scheduled")
	}
}

func TestDeviceErrorAnswerRejectsReading(t *testing.T) {
	d := newTestDevice(t, Config{Verify: true})
	d.attach(&memLink{d: d})
	d.takeReading(time.Now())
	d.flush()
	d.onError(0, hubFrame{Kind: frameError, Seq: 1, HasSeq: true, Code: "internal"})
	d.onError(0, hubFrame{Kind: frameError}) // malformed payload answer, no seq
	st := &d.s.stats
	if st.errors.Load() != 2 || st.rejected.Load() != 1 || st.pending.Load() != 0 || d.log[0].flags&flagRejected == 0 {
		t.Fatalf("errors %d rejected %d pending %d", st.errors.Load(), st.rejected.Load(), st.pending.Load())
	}
}

func TestDeviceSeqAndClockStrictlyIncrease(t *testing.T) {
	d := newTestDevice(t, Config{Verify: true})
	now := time.Now()
	for range 5 {
		d.takeReading(now) // same instant: the device clock still steps
	}
	for i := 1; i < len(d.log); i++ {
		if d.log[i].ts < d.log[i-1].ts+2 {
			t.Fatalf("device times %d then %d", d.log[i-1].ts, d.log[i].ts)
		}
	}
	if d.seq != 6 {
		t.Fatalf("next seq %d, want 6", d.seq)
	}
}

// BenchmarkDeviceReading measures the simulator's own cost per reading:
// model, buffer, frame encoding, ack bookkeeping and latency histogram.
func BenchmarkDeviceReading(b *testing.B) {
	d := newTestDevice(b, Config{})
	d.attach(&wsBenchLink{memLink: memLink{d: d}})
	now := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		d.takeReading(now.Add(time.Duration(i) * time.Millisecond))
		d.flush()
	}
}

// wsBenchLink encodes the WebSocket frame like wsLink, without a socket,
// and acks at once.
type wsBenchLink struct {
	memLink
	buf []byte
}

func (l *wsBenchLink) send(e *entry) error {
	l.buf = appendWSFrame(l.buf[:0], e, false)
	l.d.onAck(0, e.seq)
	return nil
}

func TestDeviceRebootRestartsSeqInANewEpoch(t *testing.T) {
	d := newTestDevice(t, Config{Verify: true, RebootRate: 0.5})
	first := &memLink{d: d}
	d.attach(first)
	for range 3 {
		d.takeReading(time.Now())
		d.flush()
	}
	d.onAck(0, 1)
	boot0 := d.boot
	d.reboot("")
	if !first.closed || d.currentLink() != nil {
		t.Fatal("the reboot left the connection up")
	}
	d.onAck(0, 2) // a late ack from before the reboot: that reading is gone
	st := &d.s.stats
	if st.reboots.Load() != 1 || st.rebootLost.Load() != 2 || st.pending.Load() != 0 || st.acked.Load() != 1 {
		t.Fatalf("reboots %d lost %d pending %d acked %d", st.reboots.Load(), st.rebootLost.Load(), st.pending.Load(), st.acked.Load())
	}
	if d.log[1].flags&flagAbandoned == 0 || d.log[2].flags&flagAbandoned == 0 || d.log[0].flags&flagAbandoned != 0 {
		t.Fatalf("verify log flags %v", d.log)
	}
	stale := &memLink{d: d, ep: 0}
	d.attach(stale) // dialled before the reboot
	if !stale.closed || d.currentLink() != nil {
		t.Fatal("a link of the old epoch was attached")
	}
	second := &memLink{d: d, ep: 1, acking: true}
	d.attach(second)
	d.takeReading(time.Now())
	d.flush()
	if !equalSeqs(second.sent, []uint64{1}) || d.boot == boot0 || d.boot == "" {
		t.Fatalf("after the reboot sent %v with boot %q (before %q)", second.sent, d.boot, boot0)
	}
	if len(d.epochs) != 2 || d.epochs[1].firstIdx != 3 || d.epochs[1].firstSeq != 1 || d.log[3].epoch != 1 {
		t.Fatalf("epochs %+v, log %+v", d.epochs, d.log)
	}
	if le := d.entryOf(1, 1); le != &d.log[3] || d.entryOf(0, 1) != &d.log[0] || d.entryOf(1, 2) != nil {
		t.Fatal("entryOf does not find readings by epoch and seq")
	}
}

// Run turns readings off, then waits until no reading is pending. A
// reading tick that found readings still on must count as pending by
// then, however long it takes to take the reading: a reading taken after
// the drain found none pending would end the run unsent and unacked.
func TestReadingTickRacingTheEndIsWaitedFor(t *testing.T) {
	d := newTestDevice(t, Config{})
	st := &d.s.stats
	d.s.readingsOn.Store(true)
	d.mu.Lock() // the tick stops in the middle, before the reading is in the buffer
	unlock := sync.OnceFunc(d.mu.Unlock)
	defer unlock()
	took := make(chan bool, 1)
	go func() { took <- d.takeDueReading(d.readingGen, time.Now()) }()
	waitFor(t, "the tick to count as pending", func() bool { return st.pending.Load() > 0 })
	d.s.readingsOn.Store(false)
	drained := st.pending.Load() == 0
	unlock()
	if <-took && drained {
		t.Fatal("a reading was taken after the drain found none pending")
	}
	if d.mu.Lock(); d.buf.Pending() > 0 {
		d.mu.Unlock()
		d.complete(0, 1, true)
	} else {
		d.mu.Unlock()
	}
	if n := st.pending.Load(); n != 0 {
		t.Fatalf("pending %d once the reading is acked", n)
	}
}
