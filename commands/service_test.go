package commands

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/storage"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// guard bounds every wait; it only fires when something is broken.
const guard = 20 * time.Second

// t0 is the fake clock's start, far from the real clock.
var t0 = time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)

// fakeClock is a manual clock: its timers fire when Advance passes them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c     *fakeClock
	ch    chan time.Time
	at    time.Time
	armed bool
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) NewTimer() Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{c: f, ch: make(chan time.Time, 1)}
	f.timers = append(f.timers, t)
	return t
}

// Advance moves the clock by d and fires the timers it passes.
func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	for _, t := range f.timers {
		if t.armed && !t.at.After(f.now) {
			t.armed = false
			select {
			case t.ch <- f.now:
			default:
			}
		}
	}
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) ResetAt(at time.Time) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	select { // drop a fire not yet received, like time.Timer.Reset
	case <-t.ch:
	default:
	}
	if !at.After(t.c.now) {
		t.ch <- t.c.now
		return
	}
	t.at, t.armed = at, true
}

func (t *fakeTimer) Stop() {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.armed = false
}

// fakeTransport records what it sends to the devices it reaches.
type fakeTransport struct {
	mu     sync.Mutex
	online map[string]bool
	sent   []string // command ids in the order sent
}

func (f *fakeTransport) Reachable(dev string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.online[dev]
}

func (f *fakeTransport) SendCommand(dev string, c *bridge.Command) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.online[dev] {
		return false
	}
	f.sent = append(f.sent, c.ID)
	return true
}

func (f *fakeTransport) setOnline(dev string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.online[dev] = on
}

func (f *fakeTransport) sentIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.sent...)
}

type rig struct {
	store *storage.Store
	svc   *Service
	clock *fakeClock
	tr    *fakeTransport
	path  string
}

func newRig(t *testing.T, path string, maxPending int) *rig {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "telehub.db")
	}
	clock := &fakeClock{now: t0}
	st, err := storage.Open(storage.Config{Path: path, NoFsync: true, Logger: slog.New(slog.DiscardHandler), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{Store: st, Clock: clock, MaxPending: maxPending})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{store: st, svc: svc, clock: clock, tr: &fakeTransport{online: map[string]bool{}}, path: path}
	svc.Attach(r.tr)
	svc.Start()
	t.Cleanup(r.close)
	return r
}

func (r *rig) close() {
	_ = r.svc.Shutdown(context.Background())
	_ = r.store.Close()
}

func (r *rig) create(t *testing.T, dev string, ttl time.Duration) bridge.Command {
	t.Helper()
	c, err := r.svc.Create(context.Background(), dev, Request{Name: "set_interval", Params: []byte(`{"s":5}`), TTL: ttl})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return c
}

// waitState polls the stored command until it is in state want.
func (r *rig) waitState(t *testing.T, id string, want bridge.CommandState) bridge.Command {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		c, err := r.store.Command(id)
		if err == nil && c.State == want {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("command %s is %s (%v), want %s", id, c.State, err, want)
		}
		time.Sleep(time.Millisecond) // polling a condition, not timing
	}
}

func TestExpiresWhileOffline(t *testing.T) {
	r := newRig(t, "", 0)
	short := r.create(t, "d1", time.Minute)
	long := r.create(t, "d1", time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	done := make(chan bridge.Command, 1)
	go func() {
		c, _ := r.svc.Wait(ctx, short.ID)
		done <- c
	}()
	waitFor(t, "the waiter", func() bool { r.svc.mu.Lock(); defer r.svc.mu.Unlock(); return len(r.svc.waiters) == 1 })
	r.clock.Advance(59 * time.Second)
	r.clock.Advance(time.Second)
	if c := <-done; c.State != bridge.CommandExpired {
		t.Fatalf("Wait returned %s, want expired", c.State)
	}
	if c, _ := r.store.Command(long.ID); c.State != bridge.CommandQueued {
		t.Fatalf("the hour-long command is %s, want queued", c.State)
	}
	r.clock.Advance(time.Hour)
	r.waitState(t, long.ID, bridge.CommandExpired)
	if got := r.tr.sentIDs(); len(got) != 0 {
		t.Fatalf("sent %v to an offline device", got)
	}
}

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

func TestDeliveredInCreationOrderAndResentUntilConfirmed(t *testing.T) {
	r := newRig(t, "", 0)
	a := r.create(t, "d1", 0)
	b := r.create(t, "d1", 0)
	r.tr.setOnline("d1", true)
	r.svc.Connected("d1")
	c := r.create(t, "d1", 0)
	if got := r.tr.sentIDs(); !equal(got, []string{a.ID, b.ID, c.ID}) {
		t.Fatalf("sent %v, want %v in creation order", got, []string{a.ID, b.ID, c.ID})
	}
	r.waitState(t, c.ID, bridge.CommandSent)
	if err := r.svc.Answer("d1", bridge.CommandAnswer{ID: a.ID}); err != nil {
		t.Fatal(err)
	}
	r.waitState(t, a.ID, bridge.CommandDelivered)
	r.svc.Connected("d1") // a new connection: what is not confirmed goes again
	if got := r.tr.sentIDs()[3:]; !equal(got, []string{b.ID, c.ID}) {
		t.Fatalf("resent %v, want %v", got, []string{b.ID, c.ID})
	}
	res := bridge.CommandAnswer{ID: a.ID, IsResult: true, Status: bridge.StatusError, Message: "no"}
	if err := r.svc.Answer("d1", res); err != nil {
		t.Fatal(err)
	}
	if got := r.waitState(t, a.ID, bridge.CommandFailed); got.Message != "no" {
		t.Fatalf("failed command %+v", got)
	}
}

func equal(a, b []string) bool {
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

func TestAnswerRefusals(t *testing.T) {
	r := newRig(t, "", 0)
	c := r.create(t, "d1", 0)
	var be *bridge.Error
	if err := r.svc.Answer("d2", bridge.CommandAnswer{ID: c.ID}); !errors.As(err, &be) {
		t.Errorf("another device's command: %v, want a *bridge.Error", err)
	}
	if err := r.svc.Answer("d1", bridge.CommandAnswer{ID: "00000000000000aa"}); !errors.As(err, &be) {
		t.Errorf("unknown id: %v, want a *bridge.Error", err)
	}
	if got, _ := r.store.Command(c.ID); got.State != bridge.CommandQueued {
		t.Fatalf("state %s after refused answers, want queued", got.State)
	}
}

func TestCancelOnlyBeforeDelivery(t *testing.T) {
	r := newRig(t, "", 0)
	a := r.create(t, "d1", 0)
	b := r.create(t, "d1", 0)
	got, err := r.svc.Cancel(context.Background(), a.ID)
	if err != nil || got.State != bridge.CommandCanceled {
		t.Fatalf("Cancel = %+v, %v", got, err)
	}
	if err := r.svc.Answer("d1", bridge.CommandAnswer{ID: b.ID}); err != nil {
		t.Fatal(err)
	}
	r.waitState(t, b.ID, bridge.CommandDelivered)
	if _, err := r.svc.Cancel(context.Background(), b.ID); !errors.Is(err, storage.ErrCommandState) {
		t.Fatalf("cancel after delivery: %v, want ErrCommandState", err)
	}
	if _, err := r.svc.Cancel(context.Background(), a.ID); !errors.Is(err, storage.ErrCommandState) {
		t.Fatalf("cancel twice: %v, want ErrCommandState", err)
	}
	if _, err := r.svc.Cancel(context.Background(), "00000000000000aa"); !errors.Is(err, storage.ErrCommandNotFound) {
		t.Fatalf("cancel unknown: %v, want ErrCommandNotFound", err)
	}
}

func TestLateResultIsRecorded(t *testing.T) {
	r := newRig(t, "", 0)
	c := r.create(t, "d1", time.Minute)
	r.clock.Advance(time.Minute)
	r.waitState(t, c.ID, bridge.CommandExpired)
	if err := r.svc.Answer("d1", bridge.CommandAnswer{ID: c.ID, IsResult: true, Status: bridge.StatusOK}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the late result", func() bool { got, _ := r.store.Command(c.ID); return got.Status == bridge.StatusOK })
	if got, _ := r.store.Command(c.ID); got.State != bridge.CommandExpired {
		t.Fatalf("state %s, want expired", got.State)
	}
}

// A result that comes before the device's confirmation (an MQTT device may
// publish it before the PUBACK of the command) confirms receipt too: the
// command goes through delivered, and the late PUBACK changes nothing.
func TestResultBeforeConfirmationGoesThroughDelivered(t *testing.T) {
	r := newRig(t, "", 0)
	r.tr.setOnline("d1", true)
	r.svc.Connected("d1")
	c := r.create(t, "d1", 0)
	r.waitState(t, c.ID, bridge.CommandSent)
	if err := r.svc.Answer("d1", bridge.CommandAnswer{ID: c.ID, IsResult: true, Status: bridge.StatusOK}); err != nil {
		t.Fatal(err)
	}
	r.waitState(t, c.ID, bridge.CommandSucceeded)
	if err := r.svc.Answer("", bridge.CommandAnswer{ID: c.ID}); err != nil { // the PUBACK
		t.Fatal(err)
	}
	after := r.create(t, "d1", 0) // stored after whatever the PUBACK wrote
	want := []string{"queued", "sent", "delivered", "succeeded"}
	if got := r.states(t, "d1", c.ID, after.ID); !equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// states returns the states of command id in its events on
// commands/{dev}, reading up to the creation event of command upTo.
func (r *rig) states(t *testing.T, dev, id, upTo string) []string {
	t.Helper()
	var out []string
	waitFor(t, "the creation of "+upTo, func() bool {
		out = out[:0]
		seen := false
		recs, _, err := r.store.Scan(0, r.store.LastID(), func(topic string) bool { return topic == "commands/"+dev }, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			var c bridge.Command
			if err := json.Unmarshal(rec.Data, &c); err != nil {
				t.Fatal(err)
			}
			switch c.ID {
			case id:
				out = append(out, string(c.State))
			case upTo:
				seen = true
			}
		}
		return seen
	})
	return out
}

func TestRequestValidation(t *testing.T) {
	r := newRig(t, "", 2)
	bad := []struct {
		dev string
		req Request
	}{
		{"d1", Request{Name: ""}},
		{"d1", Request{Name: "a/b"}},
		{"d/1", Request{Name: "x"}},
		{"d1", Request{Name: "x", Params: []byte(`[1]`)}},
		{"d1", Request{Name: "x", Params: []byte(`{"a":`)}},
		{"d1", Request{Name: "x", TTL: MaxTTL + time.Second}},
		{"d1", Request{Name: "x", TTL: time.Millisecond}},
		{"d1", Request{Name: "x", TTL: -time.Second}},
		{"d1", Request{Name: "x", Params: append(append([]byte(`{"a":"`), make([]byte, MaxParams)...), `"}`...)}},
	}
	for i, b := range bad {
		if _, err := r.svc.Create(context.Background(), b.dev, b.req); !errors.Is(err, ErrInvalid) {
			t.Errorf("case %d: %v, want ErrInvalid", i, err)
		}
	}
	r.create(t, "d1", 0)
	r.create(t, "d1", 0)
	if _, err := r.svc.Create(context.Background(), "d1", Request{Name: "x"}); !errors.Is(err, storage.ErrTooManyCommands) {
		t.Fatalf("third: %v, want ErrTooManyCommands", err)
	}
}

func TestPendingCommandsReloadAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "telehub.db")
	r := newRig(t, path, 0)
	a := r.create(t, "d1", 0)
	r.tr.setOnline("d1", true)
	b := r.create(t, "d1", time.Minute)
	r.waitState(t, b.ID, bridge.CommandSent)
	r.close()

	r2 := newRig(t, path, 0)
	r2.tr.setOnline("d1", true)
	r2.svc.Connected("d1")
	if got := r2.tr.sentIDs(); !equal(got, []string{a.ID, b.ID}) {
		t.Fatalf("after restart sent %v, want %v (queued and unconfirmed sent)", got, []string{a.ID, b.ID})
	}
	r2.clock.Advance(time.Minute)
	r2.waitState(t, b.ID, bridge.CommandExpired)
}

func TestWaitRightAfterTheResultSeesTheFinalState(t *testing.T) {
	r := newRig(t, "", 0)
	r.tr.setOnline("d1", true) // each command's "sent" commits around its result
	for range 20 {
		c := r.create(t, "d1", 0)
		if err := r.svc.Answer("d1", bridge.CommandAnswer{ID: c.ID, IsResult: true, Status: bridge.StatusOK}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		got, err := r.svc.Wait(ctx, c.ID)
		cancel()
		if err != nil || got.State != bridge.CommandSucceeded {
			t.Fatalf("Wait = %s, %v; want succeeded, even while the result is being committed", got.State, err)
		}
	}
}

func TestResultRacingAnExpiryEndsInOneFinalState(t *testing.T) {
	r := newRig(t, "", 0)
	c := r.create(t, "d1", time.Minute)
	r.clock.Advance(time.Minute) // the expiry is submitted
	if err := r.svc.Answer("d1", bridge.CommandAnswer{ID: c.ID, IsResult: true, Status: bridge.StatusOK}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a final state with the result", func() bool {
		got, _ := r.store.Command(c.ID)
		return got.State.Final() && got.Status == bridge.StatusOK
	})
}

func TestEndWaitsEndsEveryWait(t *testing.T) {
	r := newRig(t, "", 0)
	c := r.create(t, "d1", 0)
	type result struct {
		cmd bridge.Command
		err error
	}
	wait := func() result {
		got, err := r.svc.Wait(context.Background(), c.ID) // no deadline of its own
		return result{got, err}
	}
	ended := make(chan result, 1)
	go func() { ended <- wait() }()
	if err := r.svc.EndWaits(context.Background()); err != nil {
		t.Fatal(err)
	}
	var during result
	select {
	case during = <-ended:
	case <-time.After(guard):
		t.Fatal("a Wait under way did not end")
	}
	for _, res := range []result{during, wait()} { // a Wait after the end returns at once
		if res.err != nil || res.cmd.ID != c.ID || res.cmd.State != bridge.CommandQueued {
			t.Fatalf("Wait = %+v, %v; want the queued command", res.cmd, res.err)
		}
	}
}
