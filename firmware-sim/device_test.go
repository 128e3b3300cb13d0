package firmwaresim

import (
	"errors"
	"testing"
	"time"
)

// memLink is a link in memory that records what is sent and, when acking
// is set, confirms each reading as soon as it is sent.
type memLink struct {
	d      *device
	acking bool
	fail   error
	sent   []uint64
	closed bool
}

func (l *memLink) send(e *entry) error {
	if l.fail != nil {
		return l.fail
	}
	l.sent = append(l.sent, e.seq)
	if l.acking {
		l.d.onAck(e.seq)
	}
	return nil
}
func (l *memLink) heartbeat() error    { return nil }
func (l *memLink) malformed(int) error { return nil }
func (l *memLink) confirms() bool      { return true }
func (l *memLink) drop()               { l.closed = true }
func (l *memLink) close()              { l.closed = true }
func (l *memLink) dead() bool          { return l.closed }

func newTestDevice(t testing.TB, cfg Config) *device {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.start = time.Now()
	d := s.devices[0]
	d.firstSeq, d.seq = 1, 1
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
	d.onAck(2) // out of order: 1 and 3 stay
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
	d.onError(hubFrame{Kind: frameError, Seq: 1, HasSeq: true, Code: "internal"})
	d.onError(hubFrame{Kind: frameError}) // malformed payload answer, no seq
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
	l.d.onAck(e.seq)
	return nil
}
