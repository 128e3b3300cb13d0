package commands

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/metrics"
	"github.com/telehub/telehub/storage"
)

// Defaults and bounds of commands.
const (
	DefaultTTL        = time.Hour
	MaxTTL            = 7 * 24 * time.Hour
	MinTTL            = time.Second
	DefaultMaxPending = 100
	// MaxParams bounds the JSON of a command's params, in bytes, so that a
	// command always fits a device frame.
	MaxParams = 16 << 10
)

// Errors of the service.
var (
	// ErrInvalid: the command asked for is not valid (name, params, ttl).
	ErrInvalid = errors.New("invalid command")
	// ErrClosed: the service is shut down.
	ErrClosed = errors.New("commands closed")
)

// Store is what the service needs of storage; *storage.Store implements it.
type Store interface {
	Submit(w *bridge.Write) error
	Command(id string) (bridge.Command, error)
	DeviceCommands(device string, state bridge.CommandState, limit int) ([]bridge.Command, error)
	PendingCommands() ([]bridge.Command, error)
}

// Transport reaches devices of one kind of connection.
type Transport interface {
	// Reachable reports whether device is connected (and, over MQTT,
	// subscribed to its commands) now.
	Reachable(device string) bool
	// SendCommand hands c to the device's connection without waiting;
	// false when the device has none.
	SendCommand(device string, c *bridge.Command) bool
}

// Config configures a Service.
type Config struct {
	Store Store // required
	// MaxPending bounds each device's commands not yet final. Default 100.
	MaxPending int
	// Clock is the time of creation and expiry. Default the wall clock.
	Clock   Clock
	Logger  *slog.Logger     // default: discard
	Metrics *metrics.Metrics // default: a private set
}

// entry is a command not yet final.
type entry struct {
	cmd  bridge.Command
	slot int // index in the expiry heap, -1 when not in it
}

// device is the per-device state of the service.
type device struct {
	send    sync.Mutex // serializes sends to the device
	pending []*entry   // guarded by Service.mu; creation order
}

// Service creates, delivers, confirms and expires commands.
type Service struct {
	cfg   Config
	store Store
	clock Clock
	log   *slog.Logger
	met   *metrics.Metrics

	mu       sync.Mutex
	byID     map[string]*entry
	devices  map[string]*device
	expiries expiryHeap
	waiters  map[string][]chan bridge.Command
	// finishing holds the commands whose final change is submitted but
	// not yet committed: Wait still waits for them.
	finishing  map[string]struct{}
	transports []Transport
	// due are the devices whose queued commands the service goroutine
	// sends next (peers' commands new here, see peer.go).
	due map[string]struct{}

	wake      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	startOnce sync.Once
	stopOnce  sync.Once
	// waitsEnd, closed by EndWaits, ends every Wait.
	waitsEnd     chan struct{}
	endWaitsOnce sync.Once
}

// New returns a service over cfg.Store with its pending commands loaded.
// Attach the transports, then Start.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("%w: commands need a Store", ErrInvalid)
	}
	if cfg.MaxPending < 0 {
		return nil, fmt.Errorf("%w: negative MaxPending", ErrInvalid)
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Metrics = metrics.OrNew(cfg.Metrics)
	s := &Service{
		cfg: cfg, store: cfg.Store, clock: cfg.Clock, log: cfg.Logger, met: cfg.Metrics,
		byID: make(map[string]*entry), devices: make(map[string]*device),
		waiters: make(map[string][]chan bridge.Command), finishing: make(map[string]struct{}),
		due:  make(map[string]struct{}),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		waitsEnd: make(chan struct{}),
	}
	pending, err := cfg.Store.PendingCommands()
	if err != nil {
		return nil, fmt.Errorf("load pending commands: %w", err)
	}
	for _, c := range pending {
		s.remember(c)
	}
	return s, nil
}

// Attach adds a transport. Call it before Start.
func (s *Service) Attach(t Transport) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.transports = append(s.transports, t)
}

// Start starts the expiry goroutine.
func (s *Service) Start() {
	s.startOnce.Do(func() { go s.run() })
}

// Shutdown stops the expiry goroutine; commands stay stored.
func (s *Service) Shutdown(ctx context.Context) error {
	s.startOnce.Do(func() { close(s.done) }) // never started: nothing to wait for
	s.stopOnce.Do(func() { close(s.stop) })
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("commands shutdown: %w", ctx.Err())
	}
}

// remember keeps c, not final, in memory: its device's queue and the
// expiry heap. It wakes the expiry goroutine when c expires first.
func (s *Service) remember(c bridge.Command) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := &entry{cmd: c}
	s.byID[c.ID] = e
	d := s.deviceOf(c.Device)
	d.pending = append(d.pending, e)
	heap.Push(&s.expiries, e)
	if s.expiries[0] == e {
		s.wakeTimer()
	}
}

// deviceOf returns the state of device, made on first use. s.mu must be
// held.
func (s *Service) deviceOf(id string) *device {
	d := s.devices[id]
	if d == nil {
		d = &device{}
		s.devices[id] = d
	}
	return d
}

// forget drops e from memory (its final change is being submitted), the
// heap included when it is still there. s.mu must be held.
func (s *Service) forget(e *entry) {
	delete(s.byID, e.cmd.ID)
	s.finishing[e.cmd.ID] = struct{}{}
	if e.slot >= 0 && e.slot < len(s.expiries) && s.expiries[e.slot] == e {
		heap.Remove(&s.expiries, e.slot)
	}
	d := s.devices[e.cmd.Device]
	if d == nil {
		return
	}
	for i, p := range d.pending {
		if p == e {
			d.pending = append(d.pending[:i], d.pending[i+1:]...)
			break
		}
	}
	if len(d.pending) == 0 {
		delete(s.devices, e.cmd.Device)
	}
}

// submit writes op for device and waits for its commit; it returns the
// command as stored after it.
func (s *Service) submit(ctx context.Context, dev string, op *bridge.CommandOp) (bridge.Command, error) {
	res := make(chan bridge.Result, 1)
	w := &bridge.Write{Device: dev, Command: op, Done: func(r bridge.Result) {
		s.committed(op, r)
		res <- r
	}}
	if err := s.store.Submit(w); err != nil {
		return bridge.Command{}, fmt.Errorf("submit command change: %w", err)
	}
	select {
	case r := <-res:
		if r.Err != nil {
			return op.Out, r.Err
		}
		return op.Out, nil
	case <-ctx.Done():
		return bridge.Command{}, ctx.Err()
	}
}

// submitAsync writes op for device without waiting for its commit.
func (s *Service) submitAsync(dev string, op *bridge.CommandOp) {
	w := &bridge.Write{Device: dev, Command: op, Done: func(r bridge.Result) { s.committed(op, r) }}
	if err := s.store.Submit(w); err != nil {
		s.log.Warn("command change not submitted", "device", dev, "command", op.ID, "state", op.To, "err", err)
	}
}

// submitFinal writes op, which makes a command final, without waiting.
func (s *Service) submitFinal(dev string, op *bridge.CommandOp) { s.submitAsync(dev, op) }

// committed runs on the store's writer goroutine after op's commit: it
// counts creations and final states, and releases the waiters of a
// command whose final change was submitted, with the command as stored.
func (s *Service) committed(op *bridge.CommandOp, r bridge.Result) {
	switch {
	case r.Err != nil && errors.Is(r.Err, storage.ErrCommandState):
		s.log.Debug("command change refused", "command", op.ID, "state", op.To, "err", r.Err)
	case r.Err != nil:
		s.log.Warn("command change not stored", "command", op.ID, "state", op.To, "err", r.Err)
	case op.Changed && op.Create != nil:
		s.met.CommandsCreated.Inc()
	case op.Changed && op.Out.State.Final():
		s.met.CommandsFinished.WithLabelValues(string(op.Out.State)).Inc()
	}
	if op.Create != nil || !op.To.Final() {
		return // only a final change ends a wait
	}
	final := r.Err == nil && op.Changed && op.Out.State.Final()
	s.mu.Lock()
	_, finishing := s.finishing[op.ID]
	if !final && !finishing {
		s.mu.Unlock()
		return
	}
	delete(s.finishing, op.ID)
	ws := s.waiters[op.ID]
	delete(s.waiters, op.ID)
	s.mu.Unlock()
	for _, w := range ws {
		w <- op.Out // capacity 1, one send
	}
}
