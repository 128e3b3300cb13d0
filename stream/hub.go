package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/lxzan/gws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/telehub/telehub/internal/logx"
	"github.com/telehub/telehub/internal/metrics"
	"github.com/telehub/telehub/internal/topic"
	"github.com/telehub/telehub/storage"
)

// Errors of the hub.
var (
	// ErrInvalidConfig: New was given a Config it cannot work with.
	ErrInvalidConfig = errors.New("invalid stream config")
	// ErrClosed: the hub is shutting down and accepts no more watchers or
	// subscriptions.
	ErrClosed = errors.New("hub shutting down")
	// ErrSlowWatcher: a watcher did not keep up and was disconnected.
	ErrSlowWatcher = errors.New("watcher too slow")
	// ErrTooManyFilters: a watcher asked for more filters than
	// Config.MaxFilters.
	ErrTooManyFilters = errors.New("too many topic filters")
	// ErrForbidden: Config.Authorize does not allow the watcher a filter
	// it asked for.
	ErrForbidden = errors.New("topic filter not allowed")
)

// Log is the event log the hub replays from; *storage.Store implements it.
type Log interface {
	// IDs returns the codec of the log's event ids.
	IDs() storage.IDCodec
	// OldestID returns the oldest retained event id; false when none is.
	OldestID() (uint64, bool)
	// OldestEvent is OldestID with the event's Record.Time.
	OldestEvent() (uint64, time.Time, bool)
	// AfterTime returns the id to read after to get the retained events
	// of Record.Time t or later.
	AfterTime(t time.Time) (uint64, error)
	// LastID returns the last committed event id (0 = none).
	LastID() uint64
	// Scan returns the records with after < id <= upTo whose topic
	// matches, oldest first, at most limit. It looks at a bounded number
	// of records per call; next is the last id it looked at (continue with
	// after = next) and equals upTo once the range is exhausted.
	Scan(after, upTo uint64, match func(topic string) bool, limit int) (recs []storage.Record, next uint64, err error)
}

var _ Log = (*storage.Store)(nil)

// Config configures a Hub.
type Config struct {
	// Log is the event log to resume from. Required.
	Log Log
	// QueueLimit is the backlog size, in events, over which a watcher that
	// does not keep up is disconnected (--watcher-queue). Default 4096.
	QueueLimit int
	// Heartbeat is the interval of SSE ": ping" comments and WebSocket ping
	// frames; a WebSocket watcher silent for about twice as long is closed.
	// Default 15s.
	Heartbeat time.Duration
	// WriteTimeout is the deadline of each write to a watcher. Default 10s.
	WriteTimeout time.Duration
	// AllowedOrigins lists the Origin header values ("https://ops.example")
	// allowed to open a WebSocket watcher, besides requests without an
	// Origin header and same-host requests, which are always allowed. "*"
	// allows any origin. Default empty.
	AllowedOrigins []string
	// MaxFilters is the number of topic filters one watcher may hold.
	// Default 256.
	MaxFilters int
	// Authorize, when set, decides who may watch what. It is called with
	// each watcher's request before the stream starts or the WebSocket is
	// upgraded: an error answers 401 with a Bearer challenge and the
	// error's text. Otherwise every filter the watcher asks for (the SSE
	// topics, each WebSocket subscribe) must satisfy allow: a denied SSE
	// filter answers 403, a denied subscribe an {"op":"error"} message.
	// Default nil: anyone may watch anything.
	Authorize func(r *http.Request) (allow func(topic.Filter) bool, err error)
	// Logger receives the hub's logs. Default: discard.
	Logger *slog.Logger
	// Metrics receives the hub's metrics. Default: a private set.
	Metrics *metrics.Metrics
}

// Defaults of Config.
const (
	DefaultQueueLimit   = 4096
	DefaultHeartbeat    = 15 * time.Second
	DefaultWriteTimeout = 10 * time.Second
	DefaultMaxFilters   = 256
)

// Transports, the label values of the watcher metrics.
const (
	transportSSE = "sse"
	transportWS  = "ws"
)

// Hub fans committed events out to SSE and WebSocket watchers.
type Hub struct {
	cfg      Config
	log      *slog.Logger
	ids      storage.IDCodec
	origins  map[string]bool
	upgrader *gws.Upgrader
	stats    [2]transportStats // by format
	latency  prometheus.Observer

	done chan struct{} // closed when Shutdown begins
	wg   sync.WaitGroup

	mu        sync.Mutex // guards the fields below and every watcher's hub-side state
	published *sync.Cond // on mu: broadcast when last moves on, and at Shutdown (awaitPublished)
	awaiting  int        // watchers in awaitPublished
	closed    bool
	started   bool   // Start was called
	last      uint64 // last published id
	index     index
	watchers  map[*watcher]struct{}
	enc       encoder
	matched   []*watcher // scratch of Publish
	touched   []*watcher // scratch of Publish

	// The fan-out goroutines' queues (direct.go), used once Start started
	// them; watchers are spread over them in turn.
	shards    []*fanoutShard
	buckets   [][]*watcher // scratch of handOff, one per shard
	nextShard int
}

// transportStats are the metrics of one transport, resolved once.
type transportStats struct {
	delivered prometheus.Counter
	slow      prometheus.Counter
	connected prometheus.Gauge
}

// New returns a hub whose last published id is cfg.Log.LastID(). It
// starts nothing: it serves watchers and takes Publish at once, and Start
// starts its heartbeat. Call Shutdown to stop it.
func New(cfg Config) (*Hub, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	m := metrics.OrNew(cfg.Metrics)
	h := &Hub{
		cfg:      cfg,
		log:      cfg.Logger,
		ids:      cfg.Log.IDs(),
		origins:  originSet(cfg.AllowedOrigins),
		done:     make(chan struct{}),
		last:     cfg.Log.LastID(),
		watchers: make(map[*watcher]struct{}),
	}
	h.published = sync.NewCond(&h.mu)
	h.shards, h.buckets = newShards(fanoutShards())
	h.enc.ids = h.ids
	h.latency = m.FanoutLatency
	for f, name := range [2]string{transportSSE, transportWS} {
		h.stats[f] = transportStats{
			delivered: m.EventsDelivered.WithLabelValues(name),
			slow:      m.SlowWatchers.WithLabelValues(name),
			connected: m.WatchersConnected.WithLabelValues(name),
		}
	}
	h.upgrader = newUpgrader(h)
	return h, nil
}

// ErrStarted is returned by a second Start.
var ErrStarted = errors.New("stream hub already started")

// Start starts the heartbeat goroutine, which pings every watcher each
// Config.Heartbeat, and the fan-out goroutines, which write each commit's
// frames to the watchers that can take them at once; Shutdown stops them.
// Until Start, each watcher's own goroutine writes everything. ctx is not
// kept. It returns ErrStarted when called twice and ErrClosed after
// Shutdown.
func (h *Hub) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("stream start: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return ErrClosed
	case h.started:
		return ErrStarted
	}
	h.started = true
	h.wg.Add(1 + len(h.shards))
	go h.heartbeat()
	for _, sh := range h.shards {
		go h.fanoutLoop(sh)
	}
	return nil
}

// fill validates c and fills its defaults.
func (c *Config) fill() error {
	if c.Log == nil {
		return fmt.Errorf("%w: Log is required", ErrInvalidConfig)
	}
	if c.QueueLimit < 0 || c.Heartbeat < 0 || c.WriteTimeout < 0 || c.MaxFilters < 0 {
		return fmt.Errorf("%w: negative QueueLimit, Heartbeat, WriteTimeout or MaxFilters", ErrInvalidConfig)
	}
	if c.QueueLimit == 0 {
		c.QueueLimit = DefaultQueueLimit
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxFilters == 0 {
		c.MaxFilters = DefaultMaxFilters
	}
	c.Logger = logx.Or(c.Logger)
	return nil
}

// Watchers returns the number of watchers connected now.
func (h *Hub) Watchers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.watchers)
}

// Publish fans recs out to the watchers whose filters match. Storage's
// writer goroutine calls it after each commit with the committed records in
// id order. It never blocks on a watcher and does not keep recs (nor their
// Data) after it returns.
func (h *Hub) Publish(recs []storage.Record) {
	if len(recs) == 0 {
		return
	}
	h.mu.Lock()
	prev := h.last
	for i := range recs {
		if recs[i].ID > h.last {
			h.last = recs[i].ID
			h.fanout(&recs[i])
		}
	}
	hard := 4 * h.cfg.QueueLimit
	for _, w := range h.touched {
		w.flushStage(hard)
	}
	h.handOff(h.touched)
	clear(h.touched)
	h.touched = h.touched[:0]
	wake := h.awaiting > 0
	h.mu.Unlock()
	if wake {
		h.published.Broadcast()
	}
	h.observeLatency(recs, prev)
}

// observeLatency records, for the records above prev, the time from the
// hub receiving their reading to their fan-out.
func (h *Hub) observeLatency(recs []storage.Record, prev uint64) {
	now := time.Now()
	for i := range recs {
		if recs[i].ID > prev && !recs[i].Time.IsZero() {
			h.latency.Observe(now.Sub(recs[i].Time).Seconds())
		}
	}
}

// fanout stages rec for every watcher with a matching filter, once per
// watcher, encoding it at most once per wire format. h.mu is held.
func (h *Hub) fanout(rec *storage.Record) {
	h.matched = h.index.match(rec.Topic, h.matched[:0])
	var ev pending
	for _, w := range h.matched {
		if w.mark == rec.ID {
			continue // matched through another filter too
		}
		w.mark = rec.ID
		if len(w.stage) == 0 {
			h.touched = append(h.touched, w)
		}
		w.stage = append(w.stage, h.enc.frame(&ev, w.format, rec))
	}
	clear(h.matched)
}

// register adds w with filters to the hub. With resume set, a replay from
// the event after id from up to the last published id is queued first.
// goroutines is how many goroutines of the watcher the hub must wait for.
func (h *Hub) register(w *watcher, filters []topic.Filter, from string, resume bool, goroutines int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if resume {
		h.awaitPublished(from)
	}
	if h.closed {
		return ErrClosed
	}
	h.wg.Add(goroutines)
	h.watchers[w] = struct{}{}
	w.shard = h.nextShard
	h.nextShard = (h.nextShard + 1) % len(h.shards)
	h.stats[w.format].connected.Inc()
	added := h.addFilters(w, filters)
	if resume {
		w.pushControl(&frame{replay: h.newReplay(from, added, nil)})
	}
	return nil
}

// unregister removes w from the hub; later subscriptions of w fail.
func (h *Hub) unregister(w *watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if w.gone {
		return
	}
	w.gone = true
	for _, s := range w.subs {
		h.index.remove(s)
	}
	w.subs = nil
	delete(h.watchers, w)
	h.stats[w.format].connected.Dec()
}

// newReplay returns a replay of the events up to the last published id
// that match one of added and none of held. h.mu is held.
func (h *Hub) newReplay(from string, added []topic.Filter, held []liveFilter) *replay {
	return &replay{from: from, upTo: h.last, match: func(topic string) bool { return anyMatch(added, topic) }, live: held}
}

// heartbeat asks every watcher for a ping each Heartbeat until Shutdown.
func (h *Hub) heartbeat() {
	defer h.wg.Done()
	t := time.NewTicker(h.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-h.done:
			return
		case <-t.C:
			h.pingAll()
		}
	}
}

// pingAll flags every watcher for a ping and wakes it.
func (h *Hub) pingAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		w.ping.Store(true)
		w.wakeUp()
	}
}

// isClosed reports whether Shutdown has begun.
func (h *Hub) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// Shutdown stops accepting watchers, ends every SSE stream cleanly, closes
// every WebSocket watcher with 1001 (going away), and waits for all of the
// hub's goroutines. When ctx ends first, it cuts the remaining connections
// and returns ctx's error without waiting further. It is idempotent.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
	h.mu.Unlock()
	h.published.Broadcast()

	finished := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		h.cutAll()
		return fmt.Errorf("stream shutdown: %w", ctx.Err())
	}
}

// cutAll aborts the connections of the watchers still registered.
func (h *Hub) cutAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		w.abort()
	}
}
