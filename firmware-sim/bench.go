package firmwaresim

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/telehub/telehub/internal/topic"
)

// BenchConfig configures the lean load mode (firmware-sim bench): raw
// MQTT publishers that keep many QoS 1 publishes in flight and read their
// PUBACKs on a goroutine of their own, so that the publisher is not what
// limits the rate, and watchers that read the hub's SSE stream or
// subscribe on a plain MQTT broker. Every payload is one metric, sent_us
// (the send time in microseconds), from which watchers measure latency;
// the same run works against telehub and against any MQTT broker. The
// zero value of every field means its default.
type BenchConfig struct {
	// MQTT is the publishers' broker, tcp://host:port. Default
	// "tcp://127.0.0.1:1883".
	MQTT string
	// Publishers is the number of publisher connections, publisher n
	// publishing to devices/{IDPrefix}{n}/telemetry. Default 1.
	Publishers int
	// Rate is the messages per second of all publishers together; 0
	// publishes as fast as the window allows.
	Rate float64
	// QoS0 publishes at QoS 0. Default false: QoS 1.
	QoS0 bool
	// Metrics is the number of metrics of each payload: sent_us and
	// Metrics-1 more (m1, m2, …), so that a message is a reading of that
	// many events on the hub. Default 1.
	Metrics int
	// Window is how many QoS 1 publishes one publisher keeps in flight.
	// Default 256.
	Window int
	// Duration is how long the publishers publish. Default 10s.
	Duration time.Duration
	// Warmup is the start of the run left out of the rates and latencies.
	// Default 2s.
	Warmup time.Duration
	// Drain bounds the wait for PUBACKs and deliveries after the
	// publishers stop. Default 5s.
	Drain time.Duration
	// IDPrefix prefixes publisher (device) ids. Default "bench-".
	IDPrefix string
	// Watchers is the number of watchers, opened before the publishers
	// start. Default 0.
	Watchers int
	// WatchSSE is the hub's HTTP base URL: watchers read its
	// /v1/stream. Default "http://127.0.0.1:8080" unless WatchMQTT is set.
	WatchSSE string
	// WatchMQTT, when set, is a broker URL watchers subscribe on instead.
	WatchMQTT string
	// WatchFilter is the watchers' topic filter. Default
	// "telemetry/+/sent_us" on the hub, "devices/+/telemetry" on a broker.
	WatchFilter string
	// WatchToken is the hub watcher token of SSE watchers. Default none.
	WatchToken string
	// ConnectTimeout bounds each connection's setup. Default 5s.
	ConnectTimeout time.Duration
}

// RegisterFlags binds the lean load mode's flags to c's fields on fs.
func (c *BenchConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.MQTT, "mqtt", "tcp://127.0.0.1:1883", "publishers' MQTT broker URL (tcp://)")
	fs.IntVar(&c.Publishers, "publishers", 1, "publisher connections")
	fs.Float64Var(&c.Rate, "rate", 0, "messages per second of all publishers together (0: as fast as the window allows)")
	fs.Func("qos", "QoS of publishes, 0 or 1 (default 1)", func(s string) error {
		if s != "0" && s != "1" {
			return fmt.Errorf("%w: qos %q is not 0 or 1", ErrInvalidConfig, s)
		}
		c.QoS0 = s == "0"
		return nil
	})
	fs.IntVar(&c.Window, "window", 256, "QoS 1 publishes in flight per publisher")
	fs.IntVar(&c.Metrics, "metrics", 1, "metrics per payload: sent_us and m1, m2, … (a reading of that many events on the hub)")
	durationFlag(fs, &c.Duration, "duration", 10*time.Second, "how long the publishers publish")
	durationFlag(fs, &c.Warmup, "warmup", 2*time.Second, "start of the run left out of rates and latencies")
	durationFlag(fs, &c.Drain, "drain", 5*time.Second, "wait for PUBACKs and deliveries after the publishers stop")
	fs.StringVar(&c.IDPrefix, "id-prefix", "bench-", "publisher (device) id prefix")
	fs.IntVar(&c.Watchers, "watchers", 0, "watchers, opened before the publishers start")
	fs.StringVar(&c.WatchSSE, "watch-sse", "", "hub HTTP base URL whose /v1/stream the watchers read (default http://127.0.0.1:8080)")
	fs.StringVar(&c.WatchMQTT, "watch-mqtt", "", "MQTT broker URL (tcp://) the watchers subscribe on, instead of a hub stream")
	fs.StringVar(&c.WatchFilter, "watch-filter", "", "watchers' topic filter (default telemetry/+/sent_us on a hub, devices/+/telemetry on a broker)")
	fs.StringVar(&c.WatchToken, "watch-token", "", "hub watcher token of SSE watchers")
}

func (c BenchConfig) withDefaults() BenchConfig {
	setDefault(&c.MQTT, "tcp://127.0.0.1:1883")
	setDefault(&c.Publishers, 1)
	setDefault(&c.Window, 256)
	setDefault(&c.Metrics, 1)
	setDefault(&c.Duration, 10*time.Second)
	setDefault(&c.Warmup, 2*time.Second)
	setDefault(&c.Drain, 5*time.Second)
	setDefault(&c.IDPrefix, "bench-")
	setDefault(&c.ConnectTimeout, 5*time.Second)
	if c.WatchMQTT == "" {
		setDefault(&c.WatchSSE, "http://127.0.0.1:8080")
		setDefault(&c.WatchFilter, "telemetry/+/sent_us")
	}
	setDefault(&c.WatchFilter, "devices/+/telemetry")
	return c
}

func (c *BenchConfig) validate() error {
	switch {
	case c.Publishers < 1 || c.Window < 1 || c.Window > 65535 || c.Metrics < 1 || c.Metrics > 100:
		return fmt.Errorf("%w: publishers must be positive, window in [1, 65535] and metrics in [1, 100]", ErrInvalidConfig)
	case c.Rate < 0 || c.Watchers < 0:
		return fmt.Errorf("%w: rate and watchers must not be negative", ErrInvalidConfig)
	case c.Duration <= c.Warmup || c.Warmup < 0 || c.Drain < 0:
		return fmt.Errorf("%w: duration must be longer than the warm-up", ErrInvalidConfig)
	case !topic.ValidName(c.IDPrefix + "0"):
		return fmt.Errorf("%w: id-prefix %q makes invalid device ids", ErrInvalidConfig, c.IDPrefix)
	}
	for _, u := range []string{c.MQTT, c.WatchMQTT} {
		if _, err := brokerHost(u); u != "" && err != nil {
			return err
		}
	}
	return nil
}

// BenchSummary is the outcome of a lean load run; its JSON form is the
// output of firmware-sim bench --json. Rates count the steady window, from
// the warm-up to the end of publishing.
type BenchSummary struct {
	Publishers int     `json:"publishers"`
	QoS        int     `json:"qos"`
	Window     int     `json:"window"`
	Metrics    int     `json:"metrics"`
	Rate       float64 `json:"rate"` // offered, 0: as fast as possible
	DurationS  float64 `json:"duration_s"`
	WarmupS    float64 `json:"warmup_s"`

	Sent       uint64  `json:"sent"`
	Acked      uint64  `json:"acked"`
	SentPerS   float64 `json:"sent_per_s"`
	AckedPerS  float64 `json:"acked_per_s"`
	AckLatency Latency `json:"ack_latency_ms"`
	Unacked    uint64  `json:"unacked"`
	OutOfOrder uint64  `json:"acks_out_of_order"`

	Watchers       int     `json:"watchers"`
	WatchVia       string  `json:"watch_via,omitempty"`
	WatchFilter    string  `json:"watch_filter,omitempty"`
	Deliveries     uint64  `json:"deliveries"`
	DeliveriesPerS float64 `json:"deliveries_per_s"`
	PerWatcherMin  uint64  `json:"per_watcher_min"`
	PerWatcherMax  uint64  `json:"per_watcher_max"`
	Resumes        uint64  `json:"watcher_resumes"` // SSE streams the hub ended (too slow) and the watcher resumed
	Latency        Latency `json:"latency_ms"`
	LatencySamples uint64  `json:"latency_samples"`
}

// WriteText writes the summary as a few lines of text.
func (s *BenchSummary) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "publishers %d qos %d window %d rate %g: sent %d acked %d unacked %d\n",
		s.Publishers, s.QoS, s.Window, s.Rate, s.Sent, s.Acked, s.Unacked)
	fmt.Fprintf(&b, "steady: sent %.0f/s acked %.0f/s; ack latency ms p50 %.2f p99 %.2f max %.2f\n",
		s.SentPerS, s.AckedPerS, s.AckLatency.P50, s.AckLatency.P99, s.AckLatency.Max)
	if s.Watchers > 0 {
		fmt.Fprintf(&b, "watchers %d %s %s: deliveries %d (%.0f/s, %d..%d per watcher), %d resumed\n", s.Watchers,
			s.WatchVia, s.WatchFilter, s.Deliveries, s.DeliveriesPerS, s.PerWatcherMin, s.PerWatcherMax, s.Resumes)
		fmt.Fprintf(&b, "publisher->watcher latency ms: p50 %.2f p90 %.2f p99 %.2f max %.2f (%d samples)\n",
			s.Latency.P50, s.Latency.P90, s.Latency.P99, s.Latency.Max, s.LatencySamples)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// bench is one lean load run.
type bench struct {
	cfg     BenchConfig
	http    *http.Client
	start   time.Time
	seqBase uint64
	// lost is closed when a publisher's connection ends before the run.
	lost       chan struct{}
	lostOnce   sync.Once
	outOfOrder atomic.Uint64
	// publishErr is the publishers' failure, if any: the run's error.
	publishErr error
}

// RunBench runs the lean load mode: it opens the watchers, connects the
// publishers, publishes for cfg.Duration, waits up to cfg.Drain for the
// PUBACKs and deliveries, closes every connection and returns what it
// measured. Every goroutine it starts has ended when it returns.
func RunBench(ctx context.Context, cfg BenchConfig) (*BenchSummary, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, lost: make(chan struct{}),
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1, DisableCompression: true,
			ResponseHeaderTimeout: cfg.ConnectTimeout}}}
	defer b.http.CloseIdleConnections()
	watchCtx, cancelWatch := context.WithCancel(ctx)
	defer cancelWatch()
	b.start = time.Now() // watchers measure from it; reset when publishing starts
	watchers, err := b.openWatchers(watchCtx)
	if err != nil {
		return nil, err
	}
	var readers sync.WaitGroup
	defer readers.Wait()
	defer cancelWatch() // before the wait: a watcher may be reopening its stream
	defer closeWatchers(watchers)
	pubs, err := b.connectPublishers(ctx)
	defer closePublishers(pubs)
	if err != nil {
		return nil, err
	}
	b.start = time.Now()
	b.seqBase = uint64(b.start.UnixMilli()) * 1000
	for _, w := range watchers {
		readers.Go(func() { w.read(watchCtx) })
	}
	for _, p := range pubs {
		readers.Go(func() { p.readAcks(b.start); b.markLost() })
	}
	sum := b.publish(ctx, pubs, watchers)
	b.settle(watchers)
	b.summarizeWatchers(sum, watchers)
	return sum, errors.Join(b.publishErr, ctx.Err())
}

// markLost reports a publisher connection that ended; during the run
// that ends the run's waits for window slots.
func (b *bench) markLost() { b.lostOnce.Do(func() { close(b.lost) }) }

func (b *bench) openWatchers(ctx context.Context) ([]*benchWatcher, error) {
	var ws []*benchWatcher
	for i := range b.cfg.Watchers {
		w, err := b.openBenchWatcher(ctx, i)
		if err != nil {
			closeWatchers(ws)
			return nil, err
		}
		ws = append(ws, w)
	}
	return ws, nil
}

func closeWatchers(ws []*benchWatcher) {
	for _, w := range ws {
		w.close()
	}
}

func (b *bench) connectPublishers(ctx context.Context) ([]*benchPub, error) {
	var ps []*benchPub
	for i := range b.cfg.Publishers {
		p, err := b.dialBenchPub(ctx, i)
		if err != nil {
			return ps, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

func closePublishers(ps []*benchPub) {
	for _, p := range ps {
		p.close()
	}
}

// publish runs the publishers for the duration, snapshots the counters at
// the warm-up and at the end, and waits for the publishers' drains.
func (b *bench) publish(ctx context.Context, pubs []*benchPub, watchers []*benchWatcher) *BenchSummary {
	end := b.start.Add(b.cfg.Duration)
	var wg sync.WaitGroup
	errs := make([]error, len(pubs))
	for i, p := range pubs {
		wg.Go(func() { errs[i] = p.run(b.start, end, b.cfg.Rate/float64(len(pubs)), b.cfg.Drain) })
	}
	at0 := b.snapshot(ctx, b.start.Add(b.cfg.Warmup), pubs, watchers)
	at1 := b.snapshot(ctx, end, pubs, watchers)
	wg.Wait()
	steady := (b.cfg.Duration - b.cfg.Warmup).Seconds()
	sum := &BenchSummary{Publishers: len(pubs), QoS: 1, Window: b.cfg.Window, Metrics: b.cfg.Metrics, Rate: b.cfg.Rate,
		DurationS: b.cfg.Duration.Seconds(), WarmupS: b.cfg.Warmup.Seconds(),
		SentPerS: float64(at1.sent-at0.sent) / steady, AckedPerS: float64(at1.acked-at0.acked) / steady,
		DeliveriesPerS: float64(at1.delivered-at0.delivered) / steady, OutOfOrder: b.outOfOrder.Load()}
	if b.cfg.QoS0 {
		sum.QoS, sum.Window, sum.AckedPerS = 0, 0, 0
	}
	var ack Histogram
	for _, p := range pubs {
		sum.Sent += p.sent.Load()
		sum.Acked += p.acked.Load()
		ack.merge(&p.ack)
	}
	if !b.cfg.QoS0 {
		sum.Unacked = sum.Sent - sum.Acked
		sum.AckLatency = latencyOf(&ack)
	}
	if err := errors.Join(errs...); err != nil {
		b.publishErr = err
	}
	return sum
}

type benchCounts struct{ sent, acked, delivered uint64 }

// snapshot waits until at (or ctx's end) and adds up the counters.
func (b *bench) snapshot(ctx context.Context, at time.Time, pubs []*benchPub, watchers []*benchWatcher) benchCounts {
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	var c benchCounts
	for _, p := range pubs {
		c.sent += p.sent.Load()
		c.acked += p.acked.Load()
	}
	for _, w := range watchers {
		c.delivered += w.n.Load()
	}
	return c
}

// settle waits until the watchers received nothing for 300 ms, or the
// drain bound passed.
func (b *bench) settle(watchers []*benchWatcher) {
	if len(watchers) == 0 {
		return
	}
	deadline := time.Now().Add(b.cfg.Drain)
	for time.Now().Before(deadline) {
		var last int64
		for _, w := range watchers {
			last = max(last, w.last.Load())
		}
		if time.Since(b.start)-time.Duration(last)*time.Microsecond > 300*time.Millisecond {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *bench) summarizeWatchers(sum *BenchSummary, watchers []*benchWatcher) {
	sum.Watchers = len(watchers)
	if len(watchers) == 0 {
		return
	}
	sum.WatchVia, sum.WatchFilter = "sse", b.cfg.WatchFilter
	if b.cfg.WatchMQTT != "" {
		sum.WatchVia = "mqtt"
	}
	var hist Histogram
	sum.PerWatcherMin = ^uint64(0)
	for _, w := range watchers {
		n := w.n.Load()
		sum.Deliveries += n
		sum.PerWatcherMin, sum.PerWatcherMax = min(sum.PerWatcherMin, n), max(sum.PerWatcherMax, n)
		sum.Resumes += w.resumes.Load()
		hist.merge(&w.hist)
	}
	sum.Latency = latencyOf(&hist)
	sum.LatencySamples = hist.Count()
}

// dial opens a TCP connection to the broker of URL u.
func (b *bench) dial(ctx context.Context, u string) (net.Conn, error) {
	host, err := brokerHost(u)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: b.cfg.ConnectTimeout}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", host, err)
	}
	return conn, nil
}

// brokerHost returns the host:port of a tcp:// or mqtt:// broker URL.
func brokerHost(u string) (string, error) {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "tcp" && p.Scheme != "mqtt") || p.Host == "" {
		return "", fmt.Errorf("%w: broker %q is not a tcp:// URL", ErrInvalidConfig, u)
	}
	return p.Host, nil
}
