package cluster

import (
	"errors"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/storage"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// guard bounds every wait of these tests; it fires only when something is
// broken.
const guard = 10 * time.Second

// t0 is the time of the tests' clock.
var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// fakeStore is an outbox in memory. A removal (ForwardedUpTo) is
// committed at once, or when the test releases it with hold set; the
// next failRemovals removals fail.
type fakeStore struct {
	mu           sync.Mutex
	outbox       []storage.OutboxEntry
	removed      []uint64
	failOut      error
	hold         bool
	held         []*bridge.Write
	failRemovals int
}

func (s *fakeStore) IDs() storage.IDCodec { return storage.NewIDCodec("aaaa") }

func (s *fakeStore) Outbox(after uint64, limit int) ([]storage.OutboxEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failOut != nil {
		return nil, s.failOut
	}
	var out []storage.OutboxEntry
	for _, e := range s.outbox {
		if e.ID > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *fakeStore) Submit(w *bridge.Write) error {
	s.mu.Lock()
	if s.hold {
		s.held = append(s.held, w)
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	s.commit(w)
	return nil
}

// commit removes what w says and calls its Done, or fails it.
func (s *fakeStore) commit(w *bridge.Write) {
	s.mu.Lock()
	var r bridge.Result
	if s.failRemovals > 0 {
		s.failRemovals--
		r.Err = errors.New("commit failed")
	} else {
		keep := s.outbox[:0]
		for _, e := range s.outbox {
			if e.ID > w.ForwardedUpTo {
				keep = append(keep, e)
			}
		}
		s.outbox = keep
		s.removed = append(s.removed, w.ForwardedUpTo)
	}
	s.mu.Unlock()
	if w.Done != nil {
		w.Done(r)
	}
}

// setHold holds the removals submitted from now on, or not.
func (s *fakeStore) setHold(hold bool) {
	s.mu.Lock()
	s.hold = hold
	s.mu.Unlock()
}

// release commits the held removals.
func (s *fakeStore) release() {
	s.mu.Lock()
	held := s.held
	s.held = nil
	s.mu.Unlock()
	for _, w := range held {
		s.commit(w)
	}
}

// holding returns how many removals are held.
func (s *fakeStore) holding() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.held)
}

func (s *fakeStore) add(e storage.OutboxEntry) {
	s.mu.Lock()
	s.outbox = append(s.outbox, e)
	s.mu.Unlock()
}

func (s *fakeStore) left() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.outbox)
}

// fakeToken is a paho token completed by the test or at once.
type fakeToken struct {
	done chan struct{}
	err  error
}

func (t *fakeToken) Wait() bool                       { <-t.done; return true }
func (t *fakeToken) WaitTimeout(d time.Duration) bool { return waitChan(t.done, d) }
func (t *fakeToken) Done() <-chan struct{}            { return t.done }
func (t *fakeToken) Error() error                     { return t.err }

func waitChan(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

// published is one message of the fake broker.
type published struct {
	topic    string
	retained bool
	payload  string
}

// fakeBroker records publishes; with hold set, their tokens never
// complete.
type fakeBroker struct {
	mu        sync.Mutex
	connected bool
	hold      bool
	msgs      []published
	sent      chan struct{} // a publish happened
}

func newFakeBroker() *fakeBroker {
	return &fakeBroker{connected: true, sent: make(chan struct{}, 1000)}
}

func (b *fakeBroker) Connected() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.connected
}

func (b *fakeBroker) PublishPeers(topic string, retained bool, payload []byte) paho.Token {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.msgs = append(b.msgs, published{topic, retained, string(payload)})
	t := &fakeToken{done: make(chan struct{})}
	if !b.hold {
		close(t.done)
	}
	b.sent <- struct{}{}
	return t
}

func (b *fakeBroker) set(connected, hold bool) {
	b.mu.Lock()
	b.connected, b.hold = connected, hold
	b.mu.Unlock()
}

func (b *fakeBroker) all() []published {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]published(nil), b.msgs...)
}

// call is one call to the fake bridge.
type call struct {
	in       bridge.Input
	payload  bridge.Payload
	device   string
	presence bridge.Presence
	origin   *bridge.Origin
}

// fakeBridge records what it is asked to store and answers with result.
type fakeBridge struct {
	mu     sync.Mutex
	calls  []call
	result bridge.Result
}

func (b *fakeBridge) Telemetry(in bridge.Input, p bridge.Payload, done func(bridge.Result)) error {
	b.mu.Lock()
	b.calls = append(b.calls, call{in: in, payload: p, origin: in.Origin})
	r := b.result
	b.mu.Unlock()
	done(r)
	return nil
}

func (b *fakeBridge) Presence(device string, p bridge.Presence, _ time.Time, done func(bridge.Result)) error {
	return b.PeerPresence(device, p, time.Time{}, nil, done)
}

func (b *fakeBridge) PeerPresence(device string, p bridge.Presence, _ time.Time, o *bridge.Origin, done func(bridge.Result)) error {
	b.mu.Lock()
	b.calls = append(b.calls, call{device: device, presence: p, origin: o})
	r := b.result
	b.mu.Unlock()
	if done != nil {
		done(r)
	}
	return nil
}

func (b *fakeBridge) all() []call {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]call(nil), b.calls...)
}

// fakeLocal says which devices are online here.
type fakeLocal map[string]bool

func (l fakeLocal) Session(device string) (uint64, bool) { return 1, l[device] }

func (l fakeLocal) Restate(string) int { return 0 }

// restatingLocal is a Local that reports each Restate on restated.
type restatingLocal struct {
	fakeLocal
	restated chan string // the transport of each call
}

func (l restatingLocal) Restate(transport string) int {
	l.restated <- transport
	return 1
}

// newTestCluster is node n1 of cluster c1 with fakes, not started.
func newTestCluster(t *testing.T) (*Cluster, *fakeStore, *fakeBroker, *fakeBridge, fakeLocal) {
	t.Helper()
	st, br, bb, loc := &fakeStore{}, newFakeBroker(), &fakeBridge{}, fakeLocal{}
	c, err := New(Config{Name: "c1", Node: "n1", Store: st, Retry: time.Millisecond, RemoveInterval: time.Millisecond, PublishTimeout: guard, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	c.Attach(Links{Bridge: bb, Broker: br, Local: loc})
	return c, st, br, bb, loc
}

// waitFor polls cond until it holds, failing after the guard.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// results collects the results of done calls.
type results struct {
	mu  sync.Mutex
	got []bridge.Result
}

func (r *results) done(res bridge.Result) {
	r.mu.Lock()
	r.got = append(r.got, res)
	r.mu.Unlock()
}

func (r *results) all() []bridge.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bridge.Result(nil), r.got...)
}
