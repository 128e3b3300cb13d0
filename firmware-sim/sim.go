package firmwaresim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of Run.
var (
	// ErrAlreadyRun: a Sim runs once; make another for another run.
	ErrAlreadyRun = errors.New("simulation already ran")
	// ErrNoConnection: no device ever connected to the hub.
	ErrNoConnection = errors.New("no device could connect")
	// ErrNotAllConnected: some devices never connected to the hub.
	ErrNotAllConnected = errors.New("not every device could connect")
	// ErrNotRun: VerifyHub was called before Run returned.
	ErrNotRun = errors.New("simulation has not run")
)

// faultSalt and commandSalt separate the fault dice of a device, of its
// readings and of its commands, from its sensor models and each other.
const (
	faultSalt   = 0x9e3779b97f4a7c15
	commandSalt = 0xc2b2ae3d27d4eb4f
)

// Sim runs a set of simulated devices against a hub. See the package
// documentation for its goroutines.
type Sim struct {
	cfg     Config
	log     *slog.Logger
	backoff Backoff
	period  int64 // ns between two readings of one device
	devices []*device
	scheds  []*scheduler
	connq   chan *device // devices due for a connection attempt
	stats   stats
	hist    Histogram
	tokens  []string       // each device's token, by index ("" for none)
	dialed  []atomic.Bool  // whether each device, by index, ever connected
	tls     *tls.Config    // TLS of hub and broker connections; nil for the defaults
	watch   *watchGroup    // nil without watchers
	links   sync.WaitGroup // read loops and ack waiters of links
	start   time.Time

	readingsOn atomic.Bool           // devices take readings
	stopping   atomic.Bool           // no more connections
	halt       chan struct{}         // closed with stopping: wakes sends blocked on a link
	ran        atomic.Bool           // Run was called
	record     bool                  // keep the log of readings that verify checks
	ended      atomic.Bool           // the devices are closed: verify may run
	verifyMu   sync.Mutex            // one verify at a time (it marks the log)
	lastErr    atomic.Pointer[error] // error of the latest failed connection attempt
}

// New validates cfg, fills its defaults and prepares the devices.
func New(cfg Config) (*Sim, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	tokens, err := cfg.deviceTokens()
	if err != nil {
		return nil, err
	}
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = newHTTPClient(tlsCfg)
	}
	s := &Sim{
		cfg: cfg, log: cfg.Logger, tokens: tokens, tls: tlsCfg,
		backoff: Backoff{Min: cfg.BackoffMin, Max: cfg.BackoffMax},
		period:  int64(float64(time.Second) / cfg.Rate),
		connq:   make(chan *device, cfg.Devices),
		dialed:  make([]atomic.Bool, cfg.Devices),
		halt:    make(chan struct{}),
		record:  cfg.Verify || len(cfg.VerifyHubs) > 0,
	}
	for range min(cfg.Schedulers, cfg.Devices) {
		s.scheds = append(s.scheds, newScheduler())
	}
	for i := range cfg.Devices {
		s.devices = append(s.devices, s.newDevice(i))
	}
	s.watch = newWatchGroup(s)
	return s, nil
}

func (s *Sim) newDevice(i int) *device {
	tr := s.cfg.Transport
	if tr == TransportMixed {
		tr = TransportWS
		if i%2 == 1 {
			tr = TransportMQTT
		}
	}
	return &device{
		s: s, index: i, id: s.cfg.IDPrefix + strconv.Itoa(i), tr: tr,
		sched:   s.scheds[i%len(s.scheds)],
		silent:  i >= s.cfg.Devices-s.cfg.Silent,
		model:   NewModel(s.cfg.Seed, i),
		faults:  rand.New(rand.NewPCG(s.cfg.Seed^faultSalt, uint64(i))),
		cmdDice: rand.New(rand.NewPCG(s.cfg.Seed^commandSalt, uint64(i))),
		period:  s.period,
		buf:     newBuffer(s.cfg.BufferSize),
	}
}

// bootID returns the boot id of seq epoch n of a device: unique to the
// run (its start time) and the epoch, or "" when readings carry none:
// with NoBoot, and in the first epoch of a run without a RebootRate (a
// reboot command may start a second one, whose readings carry their boot).
func (s *Sim) bootID(n int) string {
	if s.cfg.NoBoot || s.cfg.RebootRate == 0 && n == 0 {
		return ""
	}
	return strconv.FormatInt(s.start.UnixMilli(), 36) + "-" + strconv.Itoa(n)
}

// DeviceID returns the id of device n: the id prefix followed by n.
func (s *Sim) DeviceID(n int) string { return s.cfg.IDPrefix + strconv.Itoa(n) }

// mono returns the time since the run started, in ns.
func (s *Sim) mono() int64 { return int64(time.Since(s.start)) }

// Run opens the watchers, if any, then connects the devices and has them
// take readings for the configured duration, or until ctx is done. Then it
// waits up to the drain timeout for outstanding acks (and for the watchers
// to settle), closes every connection and, with Verify, checks the hub's
// event log. The summary is returned even with an error.
func (s *Sim) Run(ctx context.Context) (*Summary, error) {
	if !s.ran.CompareAndSwap(false, true) {
		return nil, ErrAlreadyRun
	}
	s.watch.start(ctx)
	s.begin()
	dialCtx, cancelDial := context.WithCancel(context.Background())
	w := s.startWorkers(dialCtx)
	s.waitLoad(ctx)
	s.readingsOn.Store(false)
	elapsed := time.Since(s.start)
	s.drain()
	s.watch.settle(s.cfg.WatchSettle, s.cfg.DrainTimeout)
	s.watch.stop()
	s.stopping.Store(true)
	close(s.halt)
	cancelDial()
	w.stop()
	s.closeLinks()
	s.links.Wait()
	s.ended.Store(true)
	sum := s.summarize(elapsed)
	notAll := s.notAllConnected(sum)
	if sum.Connects == 0 {
		return sum, s.noConnection()
	}
	if err := s.watch.noConnection(); err != nil {
		return sum, err
	}
	if s.record {
		s.verifyMu.Lock()
		defer s.verifyMu.Unlock()
		return sum, errors.Join(notAll, s.verifyInto(sum))
	}
	return sum, notAll
}

// notAllConnected counts the devices that never connected into sum and
// returns ErrNotAllConnected naming a few of them and the latest
// connection error, or nil when every device connected.
func (s *Sim) notAllConnected(sum *Summary) error {
	var never []string
	for i := range s.dialed {
		if !s.dialed[i].Load() {
			sum.NeverConnected++
			if len(never) < 5 {
				never = append(never, s.DeviceID(i))
			}
		}
	}
	if sum.NeverConnected == 0 {
		return nil
	}
	if sum.NeverConnected > len(never) {
		never = append(never, "…")
	}
	err := fmt.Errorf("%w: %d of %d devices never connected (%s)", ErrNotAllConnected,
		sum.NeverConnected, len(s.devices), strings.Join(never, ", "))
	if last := s.lastErr.Load(); last != nil {
		err = fmt.Errorf("%w; latest error: %w", err, *last)
	}
	return err
}

// noConnection returns ErrNoConnection with the latest connection error.
func (s *Sim) noConnection() error {
	if last := s.lastErr.Load(); last != nil {
		return fmt.Errorf("%w: %w", ErrNoConnection, *last)
	}
	return ErrNoConnection
}

// begin fixes the run's clock and seqs and schedules every device's first
// connection, reading, heartbeat and, for silent devices, silence.
func (s *Sim) begin() {
	s.start = time.Now()
	seqStart := s.cfg.SeqStart
	if seqStart == 0 {
		seqStart = uint64(s.start.UnixMilli()) * 1000
	}
	s.readingsOn.Store(true)
	n := float64(len(s.devices))
	for i, d := range s.devices {
		d.startEpoch(0, seqStart)
		phase := (float64(i) + 0.5) / n
		d.sched.add(task{at: 0, dev: d, kind: taskConnect})
		d.sched.add(task{at: int64(phase * float64(s.period)), dev: d, kind: taskReading})
		if s.cfg.Heartbeat > 0 {
			d.sched.add(task{at: int64(phase * float64(s.cfg.Heartbeat)), dev: d, kind: taskHeartbeat})
		}
		if d.silent {
			d.sched.add(task{at: int64(s.cfg.SilentAfter), dev: d, kind: taskSilence})
		}
	}
}

// workers are the goroutines of a run: schedulers, connectors and the
// progress reporter.
type workers struct {
	done chan struct{}
	wg   sync.WaitGroup
}

func (w *workers) stop() {
	close(w.done)
	w.wg.Wait()
}

func (s *Sim) startWorkers(dialCtx context.Context) *workers {
	w := &workers{done: make(chan struct{})}
	for _, sc := range s.scheds {
		w.wg.Go(func() { sc.loop(w.done, s.mono, s.runTask) })
	}
	for range s.cfg.Connectors {
		w.wg.Go(func() { s.connectLoop(dialCtx, w.done) })
	}
	if s.cfg.Progress != nil {
		w.wg.Go(func() { s.progressLoop(w.done) })
	}
	return w
}

// runTask runs one scheduled task on a scheduler goroutine.
func (s *Sim) runTask(t task) {
	switch t.kind {
	case taskReading:
		t.dev.onReadingTick(t.at, t.gen)
	case taskCommand:
		t.dev.runCommand(t.cmd)
	case taskHeartbeat:
		t.dev.onHeartbeatTick(t.at)
	case taskSilence:
		t.dev.onSilenceTick(t.at)
	case taskConnect:
		select {
		case s.connq <- t.dev:
		default: // cannot happen: a device has one attempt in flight at most
			t.dev.sched.add(task{at: s.mono() + int64(s.cfg.BackoffMin), dev: t.dev, kind: taskConnect})
		}
	}
}

// connectLoop makes connection attempts until done is closed.
func (s *Sim) connectLoop(ctx context.Context, done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case d := <-s.connq:
			s.connect(ctx, d)
		}
	}
}

// connect makes one connection attempt for d.
func (s *Sim) connect(ctx context.Context, d *device) {
	if s.stopping.Load() || d.muted.Load() {
		return
	}
	dial := s.dialWS
	if d.tr == TransportMQTT {
		dial = s.dialMQTT
	}
	l, err := dial(ctx, d)
	if err != nil && ctx.Err() != nil {
		return // the run is ending
	}
	if err != nil {
		s.stats.connectFails.Add(1)
		s.lastErr.Store(&err)
		s.log.Debug("connect failed", "device", d.id, "err", err)
		d.retry()
		return
	}
	s.dialed[d.index].Store(true)
	d.attach(l)
}

// waitLoad returns when the load phase is over.
func (s *Sim) waitLoad(ctx context.Context) {
	if s.cfg.Duration <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTimer(s.cfg.Duration)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// drain waits until every reading taken was confirmed, or the drain
// timeout passed.
func (s *Sim) drain() {
	deadline := time.Now().Add(s.cfg.DrainTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for s.stats.pending.Load() > 0 && time.Now().Before(deadline) {
		<-tick.C
	}
}

// closeLinks closes every device's connection cleanly.
func (s *Sim) closeLinks() {
	for _, d := range s.devices {
		if l := d.detach(); l != nil {
			l.close()
		}
	}
}

// progressLoop writes a progress line every second until done is closed.
func (s *Sim) progressLoop(done <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			s.progressLine(s.cfg.Progress, time.Since(s.start))
		}
	}
}
