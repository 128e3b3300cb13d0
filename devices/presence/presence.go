package presence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/metrics"
)

// Defaults of Config.
const (
	// DefaultTimeout is the default time after which a device with nothing
	// heard goes offline (--device-timeout).
	DefaultTimeout = 45 * time.Second
	// DefaultForgetAfter is the default time an offline device stays in
	// memory.
	DefaultForgetAfter = 10 * time.Minute
)

// Errors of the Tracker.
var (
	// ErrInvalidConfig: a Config field is missing or out of range.
	ErrInvalidConfig = errors.New("presence: invalid config")
	// ErrClosed: the Tracker was shut down.
	ErrClosed = errors.New("presence: closed")
	// ErrStarted: Start was called twice.
	ErrStarted = errors.New("presence: already started")
)

// neverHeard is the last-heard time of a device never heard.
const neverHeard = time.Duration(math.MinInt64)

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

// Sink records presence changes; *bridge.Bridge implements it. Presence
// may block (a full storage queue); done runs once the event is stored or
// failed, and must not be waited for by Presence itself.
type Sink interface {
	Presence(device string, p bridge.Presence, at time.Time, done func(bridge.Result)) error
}

// Records reads what storage knows of one device; in telehub the store's
// device records. found is false for a device never stored.
type Records interface {
	Record(device string) (r Record, found bool, err error)
}

// Config configures a Tracker.
type Config struct {
	// Sink receives every presence change; the changes of one device reach
	// it in the order they happen. Required; in telehub the *bridge.Bridge.
	Sink Sink
	// Records reads the stored session of a device the Tracker does not
	// hold in memory: one it forgot (see ForgetAfter) or one not in Known.
	// Default nil: devices are never forgotten, and one not in Known
	// starts at session 1.
	Records Records
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
	// ForgetAfter is how long a device stays in memory once it is offline
	// and its presence events are stored. A forgotten device is read again
	// from Records when it comes back, so its sessions go on increasing.
	// Default 10 minutes; without Records devices are never forgotten.
	ForgetAfter time.Duration
	// Logger receives the logs of the Tracker. Default: logs are
	// discarded.
	Logger *slog.Logger
	// Metrics is telehub's metrics set. Presence changes are counted by
	// the bridge as they are submitted, so the Tracker adds none of its
	// own. Default a private set.
	Metrics *metrics.Metrics
	// Now is the clock for last-seen times, deadlines and event times.
	// Default time.Now.
	Now func() time.Time
}

// withDefaults validates c and returns it with defaults filled.
func (c Config) withDefaults() (Config, error) {
	if c.Sink == nil {
		return c, fmt.Errorf("%w: the tracker needs a Sink", ErrInvalidConfig)
	}
	if c.Timeout < 0 || c.ForgetAfter < 0 {
		return c, fmt.Errorf("%w: negative device timeout %v or forget time %v", ErrInvalidConfig, c.Timeout, c.ForgetAfter)
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ForgetAfter == 0 {
		c.ForgetAfter = DefaultForgetAfter
	}
	if c.Records == nil {
		c.ForgetAfter = 0 // nowhere to read a forgotten device back from
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
// connections, disconnections and every sign of life; the Tracker numbers
// the sessions of each device, takes it offline after the device timeout,
// and emits a presence event for every change.
//
// Timeouts of all devices are kept in one min-heap of deadlines, served by
// one goroutine with one timer. Heard only records the time: a deadline
// that comes due is checked against the last time the device was heard
// and, when the device spoke since, pushed back. The same goroutine
// forgets devices that have been offline for ForgetAfter.
//
// The mutex is never held while an event is submitted to the Sink: a
// change takes a ticket of its device under the mutex, and the event is
// submitted after it is released, once the device's earlier events are
// submitted. A Sink that blocks holds up the changes of that one device,
// and the caller whose event waits, but no other device.
//
// # Caveats
//
// A device read back from Records while storage fails to read it starts
// again at session 1; the failure is logged.
type Tracker struct {
	sink        Sink
	records     Records
	timeout     time.Duration
	forgetAfter time.Duration // 0: never forget
	log         *slog.Logger
	now         func() time.Time
	epoch       time.Time // times are kept as durations since epoch

	mu        sync.Mutex
	turns     sync.Cond // on mu: a device's next event may be submitted
	devices   map[string]*deviceState
	peak      int // the most devices the map held since it was made
	deadlines deadlineHeap
	offline   forgetQueue
	forgotten uint64         // how many devices were forgotten so far
	startup   []*deviceState // recorded online before the start: marked offline by Start
	started   bool
	closed    bool

	wake      chan struct{} // a deadline earlier than the timer's was added
	stop      chan struct{} // closed by Shutdown
	done      chan struct{} // closed when the timer goroutine has exited
	closeOnce sync.Once
}

// deviceState is the presence of one device. Guarded by Tracker.mu.
type deviceState struct {
	id        string
	transport string
	session   uint64
	lastHeard time.Duration // since Tracker.epoch, or neverHeard
	online    bool
	queued    bool // has an entry in the deadline heap
	wasOnline bool // recorded online before the start and not seen since
	resume    bool // recorded online, and its connection may have survived
	byMessage bool // its session began with a message, not a connection (ReasonMessage)

	// Presence events are submitted in ticket order: next is the ticket
	// of the device's next change, turn the ticket whose event may be
	// submitted now.
	next, turn uint64
	waiting    int           // goroutines waiting for their turn
	unstored   int           // events submitted whose done has not come
	offlineAt  time.Duration // when it went offline: its forget entry
}

// New returns a Tracker that knows cfg.Known. It emits nothing and runs
// no goroutine until Start.
func New(cfg Config) (*Tracker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Tracker{
		sink:        cfg.Sink,
		records:     cfg.Records,
		timeout:     cfg.Timeout,
		forgetAfter: cfg.ForgetAfter,
		log:         cfg.Logger,
		now:         cfg.Now,
		epoch:       cfg.Now(),
		devices:     make(map[string]*deviceState, len(cfg.Known)),
		wake:        make(chan struct{}, 1),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
	}
	l.turns.L = &l.mu
	for _, d := range cfg.Known {
		l.know(d, cfg.Resume != nil && d.Online && cfg.Resume(d))
	}
	for _, d := range l.devices {
		if !d.wasOnline && l.forgetAfter > 0 {
			l.offline.push(d, 0)
		}
	}
	l.peak = len(l.devices)
	return l, nil
}

// know records a device from storage. Of two records of one id, the one
// with the higher session wins.
func (l *Tracker) know(r Record, resume bool) {
	if old := l.devices[r.ID]; old != nil && old.session >= r.Session {
		return
	}
	d := l.fromRecord(r)
	d.wasOnline, d.resume = r.Online, resume
	l.devices[r.ID] = d
	if r.Online {
		l.startup = append(l.startup, d)
	}
}

// fromRecord returns the state of an offline device as stored.
func (l *Tracker) fromRecord(r Record) *deviceState {
	return &deviceState{id: r.ID, transport: r.Transport, session: r.Session, lastHeard: l.since(r.LastSeen)}
}

// Start marks offline, with reason "disconnect", the known devices that
// were recorded online and have not connected since (except those Resume
// keeps online), and starts the timer goroutine. It returns ErrStarted
// when called twice and ErrClosed after Shutdown. ctx is not kept: the
// goroutine runs until Shutdown.
func (l *Tracker) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("presence start: %w", err)
	}
	l.mu.Lock()
	if err := l.begin(); err != nil {
		l.mu.Unlock()
		return err
	}
	now := l.now()
	var changes []change
	for _, d := range l.startup {
		switch {
		case !d.wasOnline: // connected again before Start
		case d.resume: // still online; the timeout decides from now on
			d.wasOnline, d.online = false, true
			d.lastHeard = l.rel(now)
			l.schedule(d)
		default:
			d.wasOnline = false
			changes = append(changes, l.goOffline(d, bridge.ReasonDisconnect, now))
		}
	}
	l.startup = nil
	go l.run()
	l.mu.Unlock()
	for _, c := range changes {
		l.submit(c)
	}
	return nil
}

// begin marks the Tracker started. l.mu must be held.
func (l *Tracker) begin() error {
	if l.closed {
		return fmt.Errorf("presence start: %w", ErrClosed)
	}
	if l.started {
		return fmt.Errorf("presence start: %w", ErrStarted)
	}
	l.started = true
	return nil
}

// Shutdown stops the timer goroutine and waits for it, or for ctx. Devices
// keep their state and the other methods keep working, but no device
// times out any more. It returns ctx's error when ctx ends first (the
// goroutine is then waiting for the Sink); later calls wait again.
func (l *Tracker) Shutdown(ctx context.Context) error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		started := l.started
		l.mu.Unlock()
		close(l.stop)
		if !started {
			close(l.done)
		}
	})
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("presence shutdown: %w", ctx.Err())
	}
}

// Connect records a new connection of device over transport and returns
// its session number, one above the device's previous one. The device is
// online from now on, and a presence event with reason (ReasonConnect, or
// ReasonMessage when the connection became the device's by a publish) is
// emitted, also when a connection replaces one that was still online.
// Connect returns once the event is submitted.
func (l *Tracker) Connect(device, transport, reason string) (session uint64) {
	session, submit := l.Open(device, transport, reason)
	submit()
	return session
}

// Open is Connect in two steps: the session starts at once, and submit
// submits its presence event, which may wait for storage. submit must be
// called exactly once: the device's later events wait for that one. A
// transport takes the session where the order of its connections is
// decided (before answering a handshake) and submits the event where
// waiting holds up only that connection.
func (l *Tracker) Open(device, transport, reason string) (session uint64, submit func()) {
	l.mu.Lock()
	d := l.hold(device)
	c := l.goOnline(d, transport, reason, l.now())
	l.mu.Unlock()
	return c.p.Session, func() { l.submit(c) }
}

// Heard records a sign of life of device: any frame, pong, packet or
// publish. For an online device it only notes the time and returns its
// session. A device that is offline (it timed out, or was never seen)
// goes online with a new session and reason "message": then started is
// true, and Heard returns once the event is submitted.
func (l *Tracker) Heard(device, transport string) (session uint64, started bool) {
	now := l.now()
	l.mu.Lock()
	d := l.devices[device]
	if d == nil {
		d = l.hold(device)
	}
	if d.online {
		d.lastHeard = max(d.lastHeard, l.rel(now))
		session = d.session
		l.mu.Unlock()
		return session, false
	}
	c := l.goOnline(d, transport, bridge.ReasonMessage, l.now())
	l.mu.Unlock()
	l.submit(c)
	return c.p.Session, true
}

// Disconnect records the end of a device's connection, with reason
// ReasonDisconnect or ReasonWill. It does nothing when session is not the
// device's current session (a late disconnect of a replaced connection) or
// when the device is already offline. It returns once the event, if any,
// is submitted.
func (l *Tracker) Disconnect(device string, session uint64, reason string) {
	now := l.now()
	l.mu.Lock()
	d := l.devices[device]
	if d == nil || !d.online || d.session != session {
		l.mu.Unlock()
		return
	}
	c := l.goOffline(d, reason, now)
	l.mu.Unlock()
	l.submit(c)
}

// Session returns the device's current session number and whether it is
// online. A device the Tracker does not hold (never seen, or forgotten) is
// offline with session 0.
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
// the Tracker does not hold (never seen, or forgotten: its stored record
// is then up to date).
func (l *Tracker) LastSeen(device string) (t time.Time, online bool, transport string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d := l.devices[device]; d != nil {
		return l.time(d.lastHeard), d.online, d.transport, true
	}
	return time.Time{}, false, "", false
}

// goOnline starts a new session of d and returns its online event. l.mu
// must be held.
func (l *Tracker) goOnline(d *deviceState, transport, reason string, now time.Time) change {
	d.session++
	d.online = true
	d.wasOnline = false
	d.byMessage = reason == bridge.ReasonMessage
	d.transport = transport
	d.lastHeard = max(d.lastHeard, l.rel(now))
	l.schedule(d)
	return l.change(d, reason, now)
}

// goOffline ends d's session and returns its offline event; d is
// forgotten after ForgetAfter unless it comes back. l.mu must be held.
func (l *Tracker) goOffline(d *deviceState, reason string, now time.Time) change {
	d.online = false
	d.offlineAt = l.rel(now)
	if l.forgetAfter > 0 {
		if _, waiting := l.offline.peek(); !waiting {
			l.wakeTimer() // the timer may be waiting for nothing
		}
		l.offline.push(d, d.offlineAt)
	}
	return l.change(d, reason, now)
}

// rel returns t as a duration since the epoch.
func (l *Tracker) rel(t time.Time) time.Duration { return t.Sub(l.epoch) }

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
