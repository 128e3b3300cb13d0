package stream

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lxzan/gws"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/storage"
)

var latencyWatchers = flag.Int("latency-watchers", 100, "watchers of BenchmarkDeliveryLatency")

// BenchmarkDeliveryLatency measures the durable path at moderate load: one
// publisher submits one telemetry event per millisecond to a real store
// (on the test's temporary directory) and 100 watchers of one transport
// (-latency-watchers) read every event over loopback. It reports the latency from Submit to
// the end of the commit (its fsync returned; OnCommit is called), from
// Submit to the write's Done (the moment a device's ack may be sent) and
// from Submit to each watcher reading the event, as percentiles in
// microseconds, measured with the monotonic clock (the event carries its
// submit time). b.N is the number of events; use -benchtime 3000x or more.
//
// The disk cases: fsync=on on a fresh file, which grows with every commit
// (the file system allocates blocks for the new pages, and the fsync
// carries that); fsync=on,full on a file filled to its retention first, so
// that commits reuse freed pages as a hub does once its retention is
// reached; fsync=off, where the disk is out of the picture and what
// remains is the hub's own share of the latency.
func BenchmarkDeliveryLatency(b *testing.B) {
	for _, transport := range []string{transportSSE, transportWS} {
		for _, disk := range []latencyDisk{{fsync: true}, {fsync: true, full: true}, {}} {
			b.Run(transport+"/"+disk.String(), func(b *testing.B) {
				benchDeliveryLatency(b, transport, disk, *latencyWatchers, time.Millisecond)
			})
		}
	}
}

// latencyDisk says how the store of a latency benchmark uses its file.
type latencyDisk struct {
	fsync bool // commits fsync
	full  bool // the file is filled to its retention before the run
}

func (d latencyDisk) String() string {
	switch {
	case !d.fsync:
		return "fsync=off"
	case d.full:
		return "fsync=on,full"
	}
	return "fsync=on"
}

// Retention of the full-file case, and how many events fill it.
const (
	fullRetention = 20_000
	fullFill      = 30_000
)

// latencyRig is a real store feeding a hub served over loopback.
type latencyRig struct {
	store *storage.Store
	hub   *Hub
	srv   *httptest.Server
	base  time.Time // origin of the monotonic times carried by events

	durable []time.Duration // Submit to OnCommit, by event; written by the store's writer
}

// fill submits n events of other devices in large batches and waits until
// they are committed; retention then trims the oldest as the run goes on.
func fill(b *testing.B, s *storage.Store, n int) {
	var wg sync.WaitGroup
	wg.Add(n)
	for i := range n {
		dev := fmt.Sprintf("fill-%d", i%100)
		err := s.Submit(&bridge.Write{
			Device: dev,
			Events: []bridge.Event{{Kind: bridge.KindTelemetry, Topic: "telemetry/" + dev + "/temp", Device: dev,
				Data: fmt.Appendf(nil, `{"fill":%d}`, i)}},
			Done: func(bridge.Result) { wg.Done() },
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
}

func newLatencyRig(b *testing.B, disk latencyDisk) *latencyRig {
	r := &latencyRig{base: time.Now()}
	var err error
	// Publish is set before the first write is submitted.
	var publish func([]storage.Record)
	r.store, err = storage.Open(storage.Config{
		Path:      filepath.Join(b.TempDir(), "telehub.db"),
		NoFsync:   !disk.fsync,
		MaxEvents: fullRetention,
		OnCommit: func(recs []storage.Record) {
			now := r.since()
			for _, rec := range recs {
				if sent, ok := sentTime(rec.Data); ok {
					r.durable = append(r.durable, time.Duration(now-sent))
				}
			}
			publish(recs)
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := r.store.Close(); err != nil {
			b.Error(err)
		}
	})
	r.hub, err = New(Config{Log: r.store, QueueLimit: 1 << 16})
	if err != nil {
		b.Fatal(err)
	}
	publish = r.hub.Publish
	if disk.full {
		fill(b, r.store, fullFill)
	}
	if err := r.hub.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/stream", r.hub.ServeSSE)
	mux.HandleFunc("GET /v1/stream/ws", r.hub.ServeWS)
	r.srv = httptest.NewServer(mux)
	b.Cleanup(r.srv.Close)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		if err := r.hub.Shutdown(ctx); err != nil {
			b.Error(err)
		}
	})
	return r
}

// since returns the monotonic time since the rig's base, in nanoseconds.
func (r *latencyRig) since() int64 { return int64(time.Since(r.base)) }

// latencyWatcher collects the latencies one watcher saw.
type latencyWatcher struct {
	rig  *latencyRig
	want int
	got  []time.Duration
	done chan struct{}
}

// record notes the event whose data is data, if it is one of the
// benchmark's, and reports whether every expected event arrived.
func (w *latencyWatcher) record(data []byte) bool {
	sent, ok := sentTime(data)
	if !ok {
		return false
	}
	w.got = append(w.got, time.Duration(w.rig.since()-sent))
	if len(w.got) == w.want {
		close(w.done)
		return true
	}
	return false
}

// sentTime returns the submit time carried by an event's data.
func sentTime(data []byte) (int64, bool) {
	_, v, ok := bytes.Cut(data, []byte(`{"sent":`))
	if !ok {
		return 0, false
	}
	v, _, _ = bytes.Cut(v, []byte("}"))
	sent, err := strconv.ParseInt(string(v), 10, 64)
	return sent, err == nil
}

// readSSE reads w's SSE stream until it saw every event.
func (w *latencyWatcher) readSSE(b *testing.B, opened *sync.WaitGroup) {
	resp, err := http.Get(w.rig.srv.URL + "/v1/stream?topic=telemetry/%23")
	if err != nil {
		b.Error(err)
		opened.Done()
		return
	}
	defer resp.Body.Close()
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	if _, err := r.ReadSlice('\n'); err != nil { // the retry line
		b.Error(err)
	}
	opened.Done()
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		if d, ok := bytes.CutPrefix(line, []byte("data: ")); ok && w.record(d) {
			return
		}
	}
}

// wsLatencyClient feeds a WebSocket watcher's events to a latencyWatcher.
type wsLatencyClient struct {
	gws.BuiltinEventHandler
	w      *latencyWatcher
	opened *sync.WaitGroup
	once   sync.Once
}

func (c *wsLatencyClient) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	if bytes.HasPrefix(m.Bytes(), []byte(`{"op":"subscribed"`)) {
		c.once.Do(c.opened.Done)
		return
	}
	select {
	case <-c.w.done:
	default:
		c.w.record(m.Bytes())
	}
}

// readWS subscribes to telemetry/# and reads until the connection ends.
func (w *latencyWatcher) readWS(b *testing.B, opened *sync.WaitGroup) {
	c := &wsLatencyClient{w: w, opened: opened}
	conn, resp, err := gws.NewClient(c, &gws.ClientOption{
		Addr: "ws" + w.rig.srv.URL[len("http"):] + "/v1/stream/ws", ReadBufferSize: 64 << 10,
	})
	if err != nil {
		b.Error(err)
		opened.Done()
		return
	}
	_ = resp.Body.Close()
	_ = conn.WriteString(`{"op":"subscribe","topics":["telemetry/#"]}`)
	go func() {
		<-w.done
		_ = conn.WriteClose(1000, nil)
	}()
	conn.ReadLoop()
}

func benchDeliveryLatency(b *testing.B, transport string, disk latencyDisk, watchers int, every time.Duration) {
	r := newLatencyRig(b, disk)
	ws := make([]*latencyWatcher, watchers)
	var opened, finished sync.WaitGroup
	opened.Add(watchers)
	for i := range ws {
		ws[i] = &latencyWatcher{rig: r, want: b.N, got: make([]time.Duration, 0, b.N), done: make(chan struct{})}
		finished.Add(1)
		go func() {
			defer finished.Done()
			if transport == transportSSE {
				ws[i].readSSE(b, &opened)
			} else {
				ws[i].readWS(b, &opened)
			}
		}()
	}
	opened.Wait()
	waitFor(b, "watchers", func() bool { return r.hub.Watchers() == watchers })

	acks := make([]time.Duration, b.N)
	var acked sync.WaitGroup
	acked.Add(b.N)
	b.ResetTimer()
	next := time.Now()
	for i := range b.N {
		sent := r.since()
		data := fmt.Appendf(nil, `{"sent":%d}`, sent)
		err := r.store.Submit(&bridge.Write{
			Device: "bench-1",
			Events: []bridge.Event{{Kind: bridge.KindTelemetry, Topic: "telemetry/bench-1/temp", Device: "bench-1", Data: data}},
			Done: func(bridge.Result) {
				acks[i] = time.Duration(r.since() - sent)
				acked.Done()
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		next = next.Add(every)
		time.Sleep(time.Until(next))
	}
	acked.Wait()
	for _, w := range ws {
		select {
		case <-w.done:
		case <-time.After(guard):
			b.Fatalf("a watcher got %d of %d events", len(w.got), b.N)
		}
	}
	b.StopTimer()
	r.srv.CloseClientConnections()
	finished.Wait()
	var all []time.Duration
	for _, w := range ws {
		all = append(all, w.got...)
	}
	reportPercentiles(b, "durable", r.durable)
	reportPercentiles(b, "ack", acks)
	reportPercentiles(b, "watcher", all)
}

// reportPercentiles reports the p50 and p99 of d in microseconds.
func reportPercentiles(b *testing.B, name string, d []time.Duration) {
	slices.Sort(d)
	at := func(q float64) float64 {
		return float64(d[min(len(d)-1, int(q*float64(len(d))))]) / float64(time.Microsecond)
	}
	b.ReportMetric(at(0.50), name+"-p50-µs")
	b.ReportMetric(at(0.99), name+"-p99-µs")
}
