package devices

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/devices/presence"
	"github.com/telehub/telehub/internal/topic"
)

// The fakes of this file stand for the collaborators of the transports in
// every test of the package: fakeBridge and countingBridge for the bridge,
// fakePresence for the presence tracker, and recordingSink for the sink of
// a real *presence.Tracker.

// The collaborators telehub wires in satisfy the transports' interfaces.
var (
	_ Ingester = (*bridge.Bridge)(nil)
	_ Presence = (*presence.Tracker)(nil)
	_ Ingester = (*fakeBridge)(nil)
	_ Presence = (*fakePresence)(nil)
)

// waitGuard bounds every wait of these tests; it only fires on a failure.
const waitGuard = 10 * time.Second

// waitFor polls cond until it holds, failing the test after waitGuard.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakeWrite is one Telemetry call seen by fakeBridge.
type fakeWrite struct {
	in bridge.Input
	p  bridge.Payload
}

// fakeReject is one Reject call seen by fakeBridge.
type fakeReject struct {
	in   bridge.Input
	err  error
	code string
	msg  string
}

// fakeBridge is an Ingester that records what it gets. Its done callbacks
// run at once with result, or, with hold, when the test releases them.
type fakeBridge struct {
	mu        sync.Mutex
	hold      bool
	held      []func(bridge.Result)
	result    bridge.Result // given to done
	submitErr error         // returned by Telemetry when set
	block     chan struct{} // when set, Telemetry waits for it to close
	blocked   int           // Telemetry calls waiting for block
	panicOn   string        // a metric whose reading makes Telemetry panic
	discard   bool          // keep no record of writes (benchmarks)
	writes    []fakeWrite
	rejects   []fakeReject
	readW     int // writes already taken by nextWrite
	readR     int // rejects already taken by nextReject
}

func (f *fakeBridge) Telemetry(in bridge.Input, p bridge.Payload, done func(bridge.Result)) error {
	f.mu.Lock()
	block := f.block
	if len(p.Readings) > 0 && p.Readings[0].Metric == f.panicOn {
		f.mu.Unlock()
		panic("ingester failure")
	}
	if block != nil {
		f.blocked++
	}
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	f.mu.Lock()
	if f.submitErr != nil {
		defer f.mu.Unlock()
		return f.submitErr
	}
	if !f.discard {
		f.writes = append(f.writes, fakeWrite{in: in, p: p})
	}
	if f.hold {
		f.held = append(f.held, done)
		f.mu.Unlock()
		return nil
	}
	r := f.result
	f.mu.Unlock()
	done(r)
	return nil
}

// Reject records the rejection; it asks for an answer when the device id
// is valid, like the bridge without a rate limit.
func (f *fakeBridge) Reject(in bridge.Input, err error) bridge.Rejection {
	code, msg := bridge.CodeBadRequest, err.Error()
	if be, ok := errors.AsType[*bridge.Error](err); ok {
		code, msg = be.Code, be.Message
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rejects = append(f.rejects, fakeReject{in: in, err: err, code: code, msg: msg})
	return bridge.Rejection{Answer: topic.ValidDeviceID(in.Device) == nil}
}

// Pace never slows a device down.
func (f *fakeBridge) Pace(string, time.Time) time.Duration { return 0 }

// submitted returns how many payloads were submitted.
func (f *fakeBridge) submitted() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.writes)
}

// rejected returns how many rejections were recorded, and the last one.
func (f *fakeBridge) rejected() (int, fakeReject) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.rejects) == 0 {
		return 0, fakeReject{}
	}
	return len(f.rejects), f.rejects[len(f.rejects)-1]
}

// setHold makes later commits wait for release.
func (f *fakeBridge) setHold() {
	f.mu.Lock()
	f.hold = true
	f.mu.Unlock()
}

// setErrors sets the error Telemetry returns and the one its commits
// report.
func (f *fakeBridge) setErrors(submit, commit error) {
	f.mu.Lock()
	f.submitErr, f.result.Err = submit, commit
	f.mu.Unlock()
}

// releaseAt calls the done callback of the i-th held submission.
func (f *fakeBridge) releaseAt(i int) {
	f.mu.Lock()
	done := f.held[i]
	f.held[i] = nil
	f.mu.Unlock()
	done(bridge.Result{FirstID: uint64(i + 1)})
}

// release completes the held commits (from the test's goroutine, as the
// store's writer would from its own) and stops holding.
func (f *fakeBridge) release() {
	f.mu.Lock()
	held, r := f.held, f.result
	f.held, f.hold = nil, false
	f.mu.Unlock()
	for _, done := range held {
		if done != nil {
			done(r)
		}
	}
}

// nextWrite returns the next Telemetry call not taken yet.
func (f *fakeBridge) nextWrite(t testing.TB) fakeWrite {
	t.Helper()
	var w fakeWrite
	waitFor(t, "telemetry to reach the bridge", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.readW == len(f.writes) {
			return false
		}
		w = f.writes[f.readW]
		f.readW++
		return true
	})
	return w
}

// nextReject returns the next Reject call not taken yet.
func (f *fakeBridge) nextReject(t testing.TB) fakeReject {
	t.Helper()
	var r fakeReject
	waitFor(t, "a rejection to reach the bridge", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.readR == len(f.rejects) {
			return false
		}
		r = f.rejects[f.readR]
		f.readR++
		return true
	})
	return r
}

// tryWrite takes the next Telemetry call if there is one.
func (f *fakeBridge) tryWrite() (fakeWrite, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.readW == len(f.writes) {
		return fakeWrite{}, false
	}
	f.readW++
	return f.writes[f.readW-1], true
}

// noReject fails if a Reject call was not taken yet.
func (f *fakeBridge) noReject(t testing.TB) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.readR < len(f.rejects) {
		t.Fatalf("unexpected rejection %+v", f.rejects[f.readR])
	}
}

// noWrite fails if a Telemetry call was not taken yet.
func (f *fakeBridge) noWrite(t testing.TB) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.readW < len(f.writes) {
		t.Fatalf("unexpected telemetry %+v", f.writes[f.readW])
	}
}

// countingBridge counts readings and commits them at once; for
// benchmarks, where fakeBridge's records would grow.
type countingBridge struct {
	n    atomic.Int64
	done chan struct{}
	want int64
}

func (c *countingBridge) Telemetry(_ bridge.Input, _ bridge.Payload, done func(bridge.Result)) error {
	done(bridge.Result{FirstID: 1})
	if c.n.Add(1) == c.want {
		close(c.done)
	}
	return nil
}

func (c *countingBridge) Reject(bridge.Input, error) bridge.Rejection { return bridge.Rejection{} }

// Pace never slows a device down.
func (c *countingBridge) Pace(string, time.Time) time.Duration { return 0 }

// fakePresence keeps sessions like the presence tracker and reports each
// change (and each ignored disconnect) on events.
type fakePresence struct {
	events chan string

	mu      sync.Mutex
	devices map[string]*fakeDevice
	heard   map[string]int
}

type fakeDevice struct {
	session   uint64
	online    bool
	transport string
	lastSeen  time.Time
}

func newFakePresence() *fakePresence {
	return &fakePresence{
		events:  make(chan string, 1024),
		devices: make(map[string]*fakeDevice),
		heard:   make(map[string]int),
	}
}

func (f *fakePresence) device(id string) *fakeDevice {
	d := f.devices[id]
	if d == nil {
		d = &fakeDevice{}
		f.devices[id] = d
	}
	return d
}

func (f *fakePresence) online(id, transport, reason string) uint64 {
	d := f.device(id)
	d.session++
	d.online, d.transport, d.lastSeen = true, transport, time.Now()
	f.events <- fmt.Sprintf("online %s %d %s", id, d.session, reason)
	return d.session
}

func (f *fakePresence) Connect(device, transport, reason string) uint64 {
	session, _ := f.Open(device, transport, reason)
	return session
}

func (f *fakePresence) Open(device, transport, reason string) (uint64, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.online(device, transport, reason), func() {}
}

func (f *fakePresence) Heard(device, transport string) (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.heard[device]++
	if d := f.device(device); d.online {
		d.lastSeen = time.Now()
		return d.session, false
	}
	return f.online(device, transport, bridge.ReasonMessage), true
}

func (f *fakePresence) Disconnect(device string, session uint64, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.device(device)
	if !d.online || d.session != session {
		f.events <- fmt.Sprintf("ignored %s %d %s", device, session, reason)
		return
	}
	d.online = false
	f.events <- fmt.Sprintf("offline %s %d %s", device, session, reason)
}

func (f *fakePresence) Session(device string) (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.device(device)
	return d.session, d.online
}

func (f *fakePresence) LastSeen(device string) (time.Time, bool, string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.devices[device]
	if !ok {
		return time.Time{}, false, "", false
	}
	return d.lastSeen, d.online, d.transport, true
}

// timeout marks device offline as the device timeout would.
func (f *fakePresence) timeout(device string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.device(device)
	d.online = false
	f.events <- fmt.Sprintf("offline %s %d timeout", device, d.session)
}

func (f *fakePresence) heardCount(device string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.heard[device]
}

// expect reads the next events and compares them with want.
func (f *fakePresence) expect(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case got := <-f.events:
			if got != w {
				t.Fatalf("presence: got %q, want %q", got, w)
			}
		case <-time.After(waitGuard):
			t.Fatalf("presence: no event, want %q", w)
		}
	}
}

// none fails if a presence event is waiting.
func (f *fakePresence) none(t *testing.T) {
	t.Helper()
	select {
	case got := <-f.events:
		t.Fatalf("unexpected presence event %q", got)
	default:
	}
}

// presenceEvent is one event received by recordingSink.
type presenceEvent struct {
	Device string
	bridge.Presence
	At time.Time
}

func (e presenceEvent) String() string {
	return fmt.Sprintf("%s online=%v %s session=%d %s", e.Device, e.Online, e.Transport, e.Session, e.Reason)
}

// recordingSink is the presence sink of a real *presence.Tracker: it
// records every event, unless discard is set, and reports it stored at
// once. Like a full storage queue, it can hold the events of one device.
type recordingSink struct {
	discard bool
	mu      sync.Mutex
	events  []presenceEvent
	gate    chan struct{} // when set, the events of gated wait for it to close
	gated   string
	blocked chan string // one "device session=N online=B" per event held
}

// block makes the events of device wait until release is called; each
// event that waits is reported on blocked.
func (r *recordingSink) block(device string) (blocked <-chan string, release func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gate, r.gated, r.blocked = make(chan struct{}), device, make(chan string, 64)
	gate := r.gate
	return r.blocked, func() { close(gate) }
}

func (r *recordingSink) Presence(device string, p bridge.Presence, at time.Time, done func(bridge.Result)) error {
	r.mu.Lock()
	gate, gated, blocked := r.gate, r.gated, r.blocked
	r.mu.Unlock()
	if gate != nil && device == gated {
		blocked <- fmt.Sprintf("%s session=%d online=%v", device, p.Session, p.Online)
		<-gate
	}
	if !r.discard {
		r.mu.Lock()
		r.events = append(r.events, presenceEvent{Device: device, Presence: p, At: at})
		r.mu.Unlock()
	}
	done(bridge.Result{})
	return nil
}

// take returns the events recorded since the last take.
func (r *recordingSink) take() []presenceEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

// wait waits until n events were recorded since the last take and takes
// them.
func (r *recordingSink) wait(t testing.TB, n int) []presenceEvent {
	t.Helper()
	var got []presenceEvent
	waitFor(t, fmt.Sprintf("%d presence events", n), func() bool {
		got = append(got, r.take()...)
		return len(got) >= n
	})
	return got
}

// expect waits for the oldest event not taken yet, takes it and compares
// it, written as presenceEvent.String, with want.
func (r *recordingSink) expect(t testing.TB, want string) {
	t.Helper()
	var got presenceEvent
	waitFor(t, "a presence event", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.events) == 0 {
			return false
		}
		got, r.events = r.events[0], r.events[1:]
		return true
	})
	wantEvents(t, []presenceEvent{got}, want)
}

// wantEvents compares events with want, written as presenceEvent.String.
func wantEvents(t testing.TB, got []presenceEvent, want ...string) {
	t.Helper()
	g := make([]string, len(got))
	for i, e := range got {
		g[i] = e.String()
	}
	if strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Fatalf("presence events:\n%s\nwant:\n%s", strings.Join(g, "\n"), strings.Join(want, "\n"))
	}
}

// newTestPresence returns a started presence tracker over a recording
// sink, shut down when the test ends.
func newTestPresence(t testing.TB, timeout time.Duration) (*presence.Tracker, *recordingSink) {
	t.Helper()
	rec := &recordingSink{}
	p, err := presence.New(presence.Config{Sink: rec, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p, rec
}
