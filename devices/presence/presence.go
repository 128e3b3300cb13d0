package presence

import (
	"container/heap"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/metrics"
)

// expireBatch is the most timed-out devices handled under one hold of the
// Tracker mutex, so that a mass timeout does not stall Heard for long.
const expireBatch = 512

// neverHeard is the last-heard time of a device never heard.
const neverHeard = time.Duration(math.MinInt64)

// DefaultTimeout is the default time after which a device with nothing
// heard goes offline (--device-timeout).
const DefaultTimeout = 45 * time.Second

// Errors of the Tracker.
var (
	// ErrInvalidConfig: a Config field is missing or out of range.
	ErrInvalidConfig = errors.New("presence: invalid config")
	// ErrClosed: the Tracker was shut down.
	ErrClosed = errors.New("presence: closed")
	// ErrStarted: Start was called twice.
	ErrStarted = errors.New("presence: already started")
)

// Record is what storage knows of a device's presence: its last recorded
// presence change and when it was last seen.
type Record struct {
	ID string
	// Transport is the transport of the last presence change, "" when
	// unknown.
	Transport string
	// Online and Session are those of the last presence change recorded.
	Online  bool
	Session uint64
	// LastSeen is when the device was last seen; zero when never.
	LastSeen time.Time
}

// Sink records presence changes; *bridge.Bridge implements it.
type Sink interface {
	Presence(device string, p bridge.Presence, at time.Time, done func(bridge.Result)) error
}

// Config configures a Tracker.
type Config struct {
	// Sink receives every presence change, in the order the changes
	// happen. Required; in telehub the *bridge.Bridge.
	Sink Sink
	// Known are the device records stored when the hub starts. Sessions
	// continue from their Session numbers; the devices recorded Online are
	// marked offline (reason "disconnect") by Start, since their
	// connections did not survive the restart. Default none.
	Known []Record
	// Resume, when set, picks the Known devices recorded online whose
	// connections may have outlived the hub (devices of an external broker
	// stay connected to it): they stay online with their session and go
	// offline with reason "timeout" unless heard within Timeout of Start.
	// Default nil: every device recorded online is marked offline.
	Resume func(Record) bool
	// Timeout is how long a device may stay silent before it goes offline
	// with reason "timeout" (--device-timeout). Default 45s.
	Timeout time.Duration
	// Logger receives the logs of Tracker. Default: logs are discarded.
	Logger *slog.Logger
	// Metrics is telehub's metrics set. Presence changes are counted by
	// the bridge as they are submitted, so Tracker adds none of its own.
	// Default a private set.
	Metrics *metrics.Metrics
	// Now is the clock for last-seen times, deadlines and event times.
	// Default time.Now.
	Now func() time.Time
}

// withDefaults validates c and returns it with defaults filled.
func (c Config) withDefaults() (Config, error) {
	if c.Sink == nil {
		return c, fmt.Errorf("%w: liveness needs a Presence writer", ErrInvalidConfig)
	}
	if c.Timeout < 0 {
		return c, fmt.Errorf("%w: negative device timeout %v", ErrInvalidConfig, c.Timeout)
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Metrics = metrics.OrNew(c.Metrics)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// Tracker decides which devices are online. Transports report
// connections, disconnections and every sign of life; Tracker numbers the
// sessions of each device, goes offline after the device timeout, and
// emits a presence event for every change.
//
// Timeouts of all devices are kept in one min-heap of deadlines, served by
// one goroutine with one timer. Heard only records the time: a deadline
// that comes due is checked against the last time the device was heard
// and, when the device spoke since, pushed back.
//
// # Caveats
//
// Presence events are submitted while the Tracker mutex is held, so that
// they are stored in the order of the changes; a Presence writer that
// blocks (a full storage queue) stalls every transport reporting to this
// Tracker until it returns.
type Tracker struct {
	sink    Sink
	timeout time.Duration
	log     *slog.Logger
	now     func() time.Time
	epoch   time.Time           // times are kept as durations since epoch
	stored  func(bridge.Result) // done callback of every presence event

	mu        sync.Mutex
	devices   map[string]*deviceState
	deadlines deadlineHeap
	startup   []*deviceState // recorded online before the start: marked offline by Start
	started   bool
	closed    bool

	wake      chan struct{} // a deadline earlier than the timer's was added
	stop      chan struct{} // closed by Close
	done      chan struct{} // closed when the timer goroutine has exited
	closeOnce sync.Once
}

// deviceState is the liveness of one device. Guarded by Tracker.mu.
type deviceState struct {
	id        string
	transport string
	session   uint64
	lastHeard time.Duration // since Tracker.epoch, or neverHeard
	online    bool
	queued    bool // has an entry in the deadline heap
	wasOnline bool // recorded online before the start and not seen since
	resume    bool // recorded online, and its connection may have survived
}

// New returns a Tracker that knows cfg.Known. It emits nothing and
// runs no goroutine until Start.
func New(cfg Config) (*Tracker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Tracker{
		sink:    cfg.Sink,
		timeout: cfg.Timeout,
		log:     cfg.Logger,
		now:     cfg.Now,
		epoch:   cfg.Now(),
		devices: make(map[string]*deviceState, len(cfg.Known)),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	l.stored = l.logStored
	for _, d := range cfg.Known {
		l.know(d, cfg.Resume != nil && d.Online && cfg.Resume(d))
	}
	return l, nil
}

// know records a device from storage. Of two records of one id, the one
// with the higher session wins.
func (l *Tracker) know(d Record, resume bool) {
	if old := l.devices[d.ID]; old != nil && old.session >= d.Session {
		return
	}
	st := &deviceState{
		id:        d.ID,
		transport: d.Transport,
		session:   d.Session,
		lastHeard: l.since(d.LastSeen),
		wasOnline: d.Online,
		resume:    resume,
	}
	l.devices[d.ID] = st
	if d.Online {
		l.startup = append(l.startup, st)
	}
}

// Start marks offline, with reason "disconnect", the known devices that
// were recorded online and have not connected since (except those Resume
// keeps online), and starts the timeout goroutine. It returns ErrStarted when called twice and ErrClosed after
// Close.
func (l *Tracker) Start() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("liveness start: %w", ErrClosed)
	}
	if l.started {
		return fmt.Errorf("liveness start: %w", ErrStarted)
	}
	l.started = true
	now := l.now()
	for _, d := range l.startup {
		switch {
		case !d.wasOnline: // connected again before Start
		case d.resume: // still online; the timeout decides from now on
			d.wasOnline, d.online = false, true
			d.lastHeard = now.Sub(l.epoch)
			l.schedule(d)
		default:
			d.wasOnline = false
			l.emit(d, bridge.ReasonDisconnect, now)
		}
	}
	l.startup = nil
	go l.run()
	return nil
}

// Close stops the timeout goroutine and waits for it. Devices keep their
// state and the other methods keep working, but no device times out any
// more. Close is idempotent and always returns nil.
func (l *Tracker) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		started := l.started
		l.mu.Unlock()
		close(l.stop)
		if started {
			<-l.done
		}
	})
	return nil
}

// Connect records a new connection of device over transport and returns
// its session number, one above the device's previous one. The device is
// online from now on, and a presence event with reason (ReasonConnect, or
// ReasonMessage when the connection became the device's by a publish) is
// emitted, also when a connection replaces one that was still online.
func (l *Tracker) Connect(device, transport, reason string) (session uint64) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.goOnline(device, transport, reason, now).session
}

// Heard records a sign of life of device: any frame, pong, packet or
// publish. For an online device it only notes the time. A device that is
// offline (it timed out, or was never seen) goes online with a new session
// and reason "message".
func (l *Tracker) Heard(device, transport string) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if d := l.devices[device]; d != nil && d.online {
		d.lastHeard = now.Sub(l.epoch)
		return
	}
	l.goOnline(device, transport, bridge.ReasonMessage, now)
}

// Disconnect records the end of a device's connection, with reason
// ReasonDisconnect or ReasonWill. It does nothing when session is not the
// device's current session (a late disconnect of a replaced connection) or
// when the device is already offline.
func (l *Tracker) Disconnect(device string, session uint64, reason string) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.devices[device]
	if d == nil || !d.online || d.session != session {
		return
	}
	d.online = false
	l.emit(d, reason, now)
}

// Session returns the device's current session number and whether it is
// online. An unknown device has session 0 and is offline.
func (l *Tracker) Session(device string) (session uint64, online bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d := l.devices[device]; d != nil {
		return d.session, d.online
	}
	return 0, false
}

// LastSeen returns when the device was last heard, whether it is online
// and over which transport it was last connected; ok is false for a device
// Tracker does not know.
func (l *Tracker) LastSeen(device string) (t time.Time, online bool, transport string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d := l.devices[device]; d != nil {
		return l.time(d.lastHeard), d.online, d.transport, true
	}
	return time.Time{}, false, "", false
}

// goOnline starts a new session of device and emits its online event.
// l.mu must be held.
func (l *Tracker) goOnline(device, transport, reason string, now time.Time) *deviceState {
	d := l.devices[device]
	if d == nil {
		d = &deviceState{id: device}
		l.devices[device] = d
	}
	d.session++
	d.online = true
	d.wasOnline = false
	d.transport = transport
	d.lastHeard = now.Sub(l.epoch)
	l.schedule(d)
	l.emit(d, reason, now)
	return d
}

// schedule gives an online device a deadline in the heap unless it has
// one; a due entry is checked against lastHeard then. l.mu must be held.
func (l *Tracker) schedule(d *deviceState) {
	if d.queued {
		return
	}
	d.queued = true
	heap.Push(&l.deadlines, deadline{at: d.lastHeard + l.timeout, dev: d})
	if l.deadlines[0].dev == d { // earlier than the timer is set for
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// emit submits the presence event of d's current state. l.mu must be held.
func (l *Tracker) emit(d *deviceState, reason string, at time.Time) {
	p := bridge.Presence{Online: d.online, Transport: d.transport, Session: d.session, Reason: reason}
	if err := l.sink.Presence(d.id, p, at, l.stored); err != nil {
		l.log.Warn("presence event not submitted", "device", d.id, "online", d.online,
			"session", d.session, "reason", reason, "err", err)
	}
}

// logStored is the done callback of presence events.
func (l *Tracker) logStored(r bridge.Result) {
	if r.Err != nil {
		l.log.Warn("presence event not stored", "err", r.Err)
	}
}

// run is the timeout goroutine: it sleeps until the earliest deadline and
// expires what is due.
func (l *Tracker) run() {
	defer close(l.done)
	timer := time.NewTimer(l.timeout)
	timer.Stop()
	defer timer.Stop()
	for {
		var due <-chan time.Time
		if wait, ok := l.expire(); ok {
			timer.Reset(wait)
			due = timer.C
		}
		select {
		case <-l.stop:
			return
		case <-l.wake:
		case <-due:
		}
	}
}

// expire handles every deadline that is due and returns the time until the
// next one; ok is false when no device is waiting for a deadline.
func (l *Tracker) expire() (wait time.Duration, ok bool) {
	for {
		wait, ok, more := l.expireSome(l.now())
		if !more {
			return wait, ok
		}
	}
}

// expireSome handles up to expireBatch due deadlines; more is true when it
// stopped with some still due.
func (l *Tracker) expireSome(now time.Time) (wait time.Duration, ok, more bool) {
	rel := now.Sub(l.epoch)
	l.mu.Lock()
	defer l.mu.Unlock()
	for range expireBatch {
		if len(l.deadlines) == 0 {
			return 0, false, false
		}
		if next := l.deadlines[0].at; next > rel {
			return next - rel, true, false
		}
		l.check(heap.Pop(&l.deadlines).(deadline).dev, now)
	}
	return 0, true, true
}

// check handles a device whose deadline came due: an offline device leaves
// the heap, one heard since gets a later deadline, any other times out.
// l.mu must be held.
func (l *Tracker) check(d *deviceState, now time.Time) {
	d.queued = false
	if !d.online {
		return
	}
	if d.lastHeard+l.timeout > now.Sub(l.epoch) {
		l.schedule(d)
		return
	}
	d.online = false
	l.emit(d, bridge.ReasonTimeout, now)
}

// deadline is when a device times out unless heard since.
type deadline struct {
	at  time.Duration // since Tracker.epoch
	dev *deviceState
}

// since returns t as a duration since the epoch; neverHeard for the zero
// time.
func (l *Tracker) since(t time.Time) time.Duration {
	if t.IsZero() {
		return neverHeard
	}
	return t.Sub(l.epoch)
}

// time returns the time of a duration since the epoch.
func (l *Tracker) time(d time.Duration) time.Time {
	if d == neverHeard {
		return time.Time{}
	}
	return l.epoch.Add(d)
}

// deadlineHeap is a min-heap of deadlines (container/heap).
type deadlineHeap []deadline

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h deadlineHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }

// Push appends x (a deadline); for container/heap.
func (h *deadlineHeap) Push(x any) { *h = append(*h, x.(deadline)) }

// Pop removes the last element; for container/heap.
func (h *deadlineHeap) Pop() any {
	old := *h
	n := len(old) - 1
	x := old[n]
	old[n] = deadline{}
	*h = old[:n]
	return x
}
