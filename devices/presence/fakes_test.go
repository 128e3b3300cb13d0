package presence

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telehub/telehub/bridge"
)

// presenceEvent is one event received by recordingSink.
type presenceEvent struct {
	Device string
	bridge.Presence
	At time.Time
}

func (e presenceEvent) String() string {
	return fmt.Sprintf("%s online=%v %s session=%d %s", e.Device, e.Online, e.Transport, e.Session, e.Reason)
}

// recordingSink is a Sink that records every event and reports it stored
// at once, unless the test blocks it.
type recordingSink struct {
	mu        sync.Mutex
	events    []presenceEvent
	err       error        // returned by Presence when set
	commitErr error        // reported to done
	discard   bool         // keep no events
	records   *fakeRecords // when set, stores every event before done
	holdDone  bool         // keep the done callbacks for release
	held      []func(bridge.Result)
	// gate, when set, holds the events of device gated until it is
	// closed; blocked receives one value per event held.
	gate    chan struct{}
	gated   string
	blocked chan string
}

func (r *recordingSink) Presence(device string, p bridge.Presence, at time.Time, done func(bridge.Result)) error {
	r.mu.Lock()
	gate := r.gate
	r.mu.Unlock()
	if gate != nil && device == r.gated {
		r.blocked <- fmt.Sprintf("%s session=%d online=%v", device, p.Session, p.Online)
		<-gate
	}
	r.mu.Lock()
	if r.err != nil {
		defer r.mu.Unlock()
		return r.err
	}
	ev := presenceEvent{Device: device, Presence: p, At: at}
	if !r.discard {
		r.events = append(r.events, ev)
	}
	if r.records != nil {
		r.records.storeAll([]presenceEvent{ev})
	}
	if r.holdDone {
		r.held = append(r.held, done)
		r.mu.Unlock()
		return nil
	}
	res := bridge.Result{Err: r.commitErr}
	r.mu.Unlock()
	done(res)
	return nil
}

// release calls the done callbacks held and stops holding them.
func (r *recordingSink) release() {
	r.mu.Lock()
	held := r.held
	r.held, r.holdDone = nil, false
	r.mu.Unlock()
	for _, done := range held {
		done(bridge.Result{})
	}
}

// block makes the events of device wait until the returned function is
// called; each event that waits is reported on blocked.
func (r *recordingSink) block(device string) (blocked <-chan string, release func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gate, r.gated, r.blocked = make(chan struct{}), device, make(chan string, 16)
	gate := r.gate
	return r.blocked, func() { close(gate) }
}

// take returns the events recorded since the last take.
func (r *recordingSink) take() []presenceEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

// newTestTracker returns a started Tracker over a recording sink, shut
// down when the test ends.
func newTestTracker(t *testing.T, known ...Record) (*Tracker, *recordingSink) {
	t.Helper()
	rec := &recordingSink{}
	l, err := New(Config{Sink: rec, Known: known, Timeout: 45 * time.Second})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := l.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = l.Shutdown(context.Background()) })
	return l, rec
}

// wantEvents compares events with want, written as presenceEvent.String.
func wantEvents(t *testing.T, got []presenceEvent, want ...string) {
	t.Helper()
	g := make([]string, len(got))
	for i, e := range got {
		g[i] = e.String()
	}
	if strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Fatalf("presence events:\n%s\nwant:\n%s", strings.Join(g, "\n"), strings.Join(want, "\n"))
	}
}

// fakeRecords is the store's device records: what a recordingSink stored,
// or, with none set, nothing. reads counts the reads.
type fakeRecords struct {
	mu      sync.Mutex
	records map[string]Record
	err     error
	reads   int
}

func (f *fakeRecords) Record(device string) (Record, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.err != nil {
		return Record{}, false, f.err
	}
	r, ok := f.records[device]
	return r, ok, nil
}

// storeAll records what events say, as storage does with presence events.
func (f *fakeRecords) storeAll(events []presenceEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.records == nil {
		f.records = make(map[string]Record)
	}
	for _, e := range events {
		f.records[e.Device] = Record{ID: e.Device, Transport: e.Transport, Online: e.Online, Session: e.Session, LastSeen: e.At}
	}
}
