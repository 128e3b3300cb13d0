package firmwaresim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"

	"github.com/telehub/telehub/internal/topic"
)

// WatchTransport says how watchers connect to the hub.
type WatchTransport string

// The transports of --watch-transport.
const (
	// WatchSSE reads GET /v1/stream as Server-Sent Events.
	WatchSSE WatchTransport = "sse"
	// WatchWS subscribes on GET /v1/stream/ws.
	WatchWS WatchTransport = "ws"
)

// String returns the flag form of t.
func (t *WatchTransport) String() string { return string(*t) }

// Set parses the flag form of a watcher transport.
func (t *WatchTransport) Set(s string) error {
	switch WatchTransport(s) {
	case WatchSSE, WatchWS:
		*t = WatchTransport(s)
		return nil
	}
	return fmt.Errorf("%w: watch-transport %q is not sse or ws", ErrInvalidConfig, s)
}

// DefaultWatchFilter is the watchers' default topic filter: every
// telemetry event. A filter cannot select devices by id prefix (a wildcard
// takes a whole level), so on a hub shared with other sources watchers see
// their events too.
const DefaultWatchFilter = "telemetry/+/#"

// watchReadBuffer is the read buffer of a watcher connection: one read
// takes a few hundred events.
const watchReadBuffer = 64 << 10

// parseWatchFilter splits a comma-separated list of topic filters and
// checks each against the MQTT wildcard rules.
func parseWatchFilter(s string) ([]string, error) {
	filters := strings.Split(s, ",")
	for i, f := range filters {
		f = strings.TrimSpace(f)
		if _, err := topic.ParseFilter(f); err != nil {
			return nil, fmt.Errorf("%w: watch-filter %q is not a topic filter", ErrInvalidConfig, f)
		}
		filters[i] = f
	}
	return filters, nil
}

// WatcherSummary is what the watchers saw during a run.
type WatcherSummary struct {
	Count     int      `json:"count"`
	Transport string   `json:"transport"`
	Filters   []string `json:"filters"`

	Deliveries     uint64  `json:"deliveries"`       // events received by all watchers
	DeliveriesPerS float64 `json:"deliveries_per_s"` // from the devices' start to the last delivery
	PerWatcherMin  uint64  `json:"per_watcher_min"`  // events received by the watcher that got fewest
	PerWatcherMax  uint64  `json:"per_watcher_max"`  // events received by the watcher that got most

	// Latency is receive time minus the event's "ts" over all telemetry
	// events received: the device's reading time, in whole milliseconds,
	// so each value is over by up to 1 ms.
	Latency        Latency `json:"latency_ms"`
	LatencySamples uint64  `json:"latency_samples"`

	Disconnects uint64 `json:"disconnects"`      // streams lost during the run (then resumed)
	Resets      uint64 `json:"resets"`           // resumes the hub could not serve from the id
	Errors      uint64 `json:"errors"`           // error messages from the hub (WebSocket)
	ConnectFail uint64 `json:"connect_failures"` // attempts to open a stream that failed
}

// writeText writes the watchers' summary line.
func (w *WatcherSummary) writeText(b *strings.Builder) {
	fmt.Fprintf(b, "watchers %d %s %s: deliveries %d (%.0f/s, %d..%d per watcher)\n",
		w.Count, w.Transport, strings.Join(w.Filters, ","), w.Deliveries, w.DeliveriesPerS,
		w.PerWatcherMin, w.PerWatcherMax)
	fmt.Fprintf(b, "device->watcher latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  (%d samples)\n",
		w.Latency.P50, w.Latency.P90, w.Latency.P99, w.Latency.Max, w.LatencySamples)
	fmt.Fprintf(b, "watcher disconnects %d  resets %d  errors %d  connect failures %d\n",
		w.Disconnects, w.Resets, w.Errors, w.ConnectFail)
}

// watchGroup is the watchers of a run. Each watcher has one goroutine,
// owned by the group, that connects, reads and reconnects until stop.
type watchGroup struct {
	s       *Sim
	filters []string
	sseURL  string
	wsURL   string
	client  *http.Client  // SSE watchers
	sem     chan struct{} // bounds connection attempts in flight
	ctx     context.Context
	cancel  context.CancelFunc // ends SSE requests and dials
	done    chan struct{}      // closed by stop
	first   sync.WaitGroup     // each watcher's first attempt
	wg      sync.WaitGroup     // watcher goroutines

	watchers []*watcher

	online       atomic.Int64
	connects     atomic.Uint64
	disconnects  atomic.Uint64
	resets       atomic.Uint64
	errors       atomic.Uint64
	connectFails atomic.Uint64
	lastErr      atomic.Pointer[error]
}

// watcher is one watcher connection and its counters.
type watcher struct {
	g     *watchGroup
	index int
	hist  Histogram // device → watcher latency

	deliveries atomic.Uint64
	lastAt     atomic.Int64 // Unix µs of the latest delivery
	firstOnce  sync.Once

	// Owned by the watcher's goroutine.
	sse    sseParser // SSE stream state; its lastID is the SSE resume point
	lastID []byte    // WebSocket resume point
	buf    []byte    // SSE read buffer

	conn atomic.Pointer[gws.Conn] // current WebSocket connection, for stop
}

// newWatchGroup prepares the watchers of s; nil without watchers.
func newWatchGroup(s *Sim) *watchGroup {
	if s.cfg.Watchers == 0 {
		return nil
	}
	filters, _ := parseWatchFilter(s.cfg.WatchFilter) // validated by New
	g := &watchGroup{
		s: s, filters: filters, sseURL: sseURL(s.cfg.WatchHub, filters),
		wsURL:  wsBase(s.cfg.WatchHub) + "/v1/stream/ws",
		client: newSSEClient(&s.cfg, s.tls), sem: make(chan struct{}, s.cfg.Connectors),
		done: make(chan struct{}),
	}
	for i := range s.cfg.Watchers {
		w := &watcher{g: g, index: i}
		w.sse.hist = &w.hist
		g.watchers = append(g.watchers, w)
	}
	return g
}

// start opens the watchers and returns once each has made its first
// connection attempt, or ctx is done.
func (g *watchGroup) start(ctx context.Context) {
	if g == nil {
		return
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.first.Add(len(g.watchers))
	for _, w := range g.watchers {
		g.wg.Go(w.loop)
	}
	firstDone := make(chan struct{})
	g.wg.Go(func() { // every watcher's goroutine makes its first attempt, or ends
		g.first.Wait()
		close(firstDone)
	})
	select {
	case <-firstDone:
	case <-ctx.Done():
	}
}

// stopped reports whether stop was called.
func (g *watchGroup) stopped() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// loop connects, reads until the stream ends and reconnects with backoff,
// resuming after the last event received, until the group stops.
func (w *watcher) loop() {
	defer w.firstOnce.Do(w.g.first.Done)
	session := w.sseSession
	if w.g.s.cfg.WatchTransport == WatchWS {
		session = w.wsSession
	}
	attempt := 0
	for {
		connected, err := session(w.g.ctx)
		w.firstOnce.Do(w.g.first.Done)
		if w.g.stopped() {
			return
		}
		attempt = w.g.lost(w, connected, err, attempt)
		if !w.g.sleep(w.g.s.backoff.Delay(attempt, rand.Float64())) {
			return
		}
		attempt++
	}
}

// lost counts the end of a stream or a failed attempt, logs it and
// returns the backoff attempt number to use next.
func (g *watchGroup) lost(w *watcher, connected bool, err error, attempt int) int {
	if connected {
		g.disconnects.Add(1)
		g.s.log.Info("watcher stream lost; resuming", "watcher", w.index, "err", err)
		return 0
	}
	g.connectFails.Add(1)
	if err != nil {
		g.lastErr.Store(&err)
	}
	g.s.log.Debug("watcher connect failed", "watcher", w.index, "err", err)
	return attempt
}

// sleep waits d, or until stop; it reports whether the group still runs.
func (g *watchGroup) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-g.done:
		return false
	case <-t.C:
		return true
	}
}

// connected marks the watcher's stream open.
func (w *watcher) connected() {
	w.g.connects.Add(1)
	w.g.online.Add(1)
	w.firstOnce.Do(w.g.first.Done)
}

// delivered counts n events received at nowUS.
func (w *watcher) delivered(n uint64, nowUS int64) {
	if n > 0 {
		w.deliveries.Add(n)
		w.lastAt.Store(nowUS)
	}
}

// deliveries returns the events received so far by all watchers.
func (g *watchGroup) deliveries() uint64 {
	var n uint64
	for _, w := range g.watchers {
		n += w.deliveries.Load()
	}
	return n
}

// settle waits until no watcher received anything for quiet, at most for
// bound: the events of the last readings reach the watchers.
func (g *watchGroup) settle(quiet, bound time.Duration) {
	if g == nil {
		return
	}
	deadline := time.Now().Add(bound)
	tick := time.NewTicker(min(quiet/5, 50*time.Millisecond))
	defer tick.Stop()
	last, since := g.deliveries(), time.Now()
	for time.Now().Before(deadline) {
		<-tick.C
		if n := g.deliveries(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= quiet {
			return
		}
	}
}

// stop ends every watcher's stream and waits for their goroutines.
func (g *watchGroup) stop() {
	if g == nil {
		return
	}
	close(g.done)
	g.cancel()
	for _, w := range g.watchers {
		if c := w.conn.Load(); c != nil {
			_ = c.WriteClose(1000, nil)
		}
	}
	g.wg.Wait()
	g.client.CloseIdleConnections()
}

// noConnection returns an error when watchers were asked for and none
// ever opened a stream.
func (g *watchGroup) noConnection() error {
	if g == nil || g.connects.Load() > 0 {
		return nil
	}
	if last := g.lastErr.Load(); last != nil {
		return fmt.Errorf("%w: no watcher: %w", ErrNoConnection, *last)
	}
	return fmt.Errorf("%w: no watcher", ErrNoConnection)
}

// summary sums up the watchers; start is when the devices started.
func (g *watchGroup) summary(start time.Time) *WatcherSummary {
	if g == nil {
		return nil
	}
	sum := &WatcherSummary{
		Count: len(g.watchers), Transport: string(g.s.cfg.WatchTransport), Filters: g.filters,
		Disconnects: g.disconnects.Load(), Resets: g.resets.Load(), Errors: g.errors.Load(),
		ConnectFail: g.connectFails.Load(), PerWatcherMin: ^uint64(0),
	}
	var hist Histogram
	var lastAt int64
	for _, w := range g.watchers {
		n := w.deliveries.Load()
		sum.Deliveries += n
		sum.PerWatcherMin, sum.PerWatcherMax = min(sum.PerWatcherMin, n), max(sum.PerWatcherMax, n)
		hist.merge(&w.hist)
		lastAt = max(lastAt, w.lastAt.Load())
	}
	if window := lastAt - start.UnixMicro(); window > 0 {
		sum.DeliveriesPerS = float64(sum.Deliveries) / (float64(window) / 1e6)
	}
	sum.Latency = latencyOf(&hist)
	sum.LatencySamples = hist.Count()
	return sum
}

// progress returns the watchers' part of a progress line.
func (g *watchGroup) progress() string {
	if g == nil {
		return ""
	}
	return fmt.Sprintf(" watch=%d/%d deliv=%d", g.online.Load(), len(g.watchers), g.deliveries())
}
