package firmwaresim

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// benchWatcher is one watcher of the lean load mode: a hub SSE stream or
// a plain MQTT subscription, counting the messages it receives and
// recording, for those sent after the warm-up, receive time minus the
// sent_us in their payload.
type benchWatcher struct {
	b    *bench
	hist Histogram
	n    atomic.Uint64
	last atomic.Int64 // µs since the run's start of the latest delivery
	// resumes counts SSE streams reopened after the hub ended one (a
	// watcher cut as too slow resumes after its last event).
	resumes atomic.Uint64
	lastID  []byte // the SSE stream's last event id; the reader's

	mu     sync.Mutex
	body   io.ReadCloser
	closed bool
}

// openBenchWatcher opens watcher i and returns once it is subscribed.
func (b *bench) openBenchWatcher(ctx context.Context, i int) (*benchWatcher, error) {
	w := &benchWatcher{b: b}
	var err error
	if b.cfg.WatchMQTT != "" {
		w.body, err = b.subscribeMQTT(ctx, i)
	} else {
		w.body, err = b.openSSE(ctx, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("watcher %d: %w", i, err)
	}
	return w, nil
}

// subscribeMQTT connects to the watchers' broker and subscribes to the
// watch filter.
func (b *bench) subscribeMQTT(ctx context.Context, i int) (io.ReadCloser, error) {
	conn, err := b.dial(ctx, b.cfg.WatchMQTT)
	if err != nil {
		return nil, err
	}
	id := b.cfg.IDPrefix + "watch-" + strconv.Itoa(i)
	if err := mqttHandshake(conn, mqttConnectPacket(id), mqttConnack, b.cfg.ConnectTimeout); err != nil {
		_ = conn.Close()
		return nil, err
	}
	if err := mqttHandshake(conn, mqttSubscribePacket(b.cfg.WatchFilter), mqttSuback, b.cfg.ConnectTimeout); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}

// openSSE opens the hub's SSE stream of the watch filter, after event
// lastID when it is set.
func (b *bench) openSSE(ctx context.Context, lastID []byte) (io.ReadCloser, error) {
	u := strings.TrimSuffix(b.cfg.WatchSSE, "/") + "/v1/stream?" + url.Values{"topic": {b.cfg.WatchFilter}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("stream request: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if b.cfg.WatchToken != "" {
		req.Header.Set("Authorization", "Bearer "+b.cfg.WatchToken)
	}
	if len(lastID) > 0 {
		req.Header.Set("Last-Event-ID", string(lastID))
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /v1/stream: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("%w: GET /v1/stream: HTTP %d", ErrHubResponse, resp.StatusCode)
	}
	return resp.Body, nil
}

// stampReader notes when each read returned, in µs since start: a
// message completed by a read was received then.
type stampReader struct {
	r     io.Reader
	start time.Time
	now   int64
}

func (s *stampReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.now = int64(time.Since(s.start) / time.Microsecond)
	return n, err
}

// read counts the watcher's messages until it is closed. An SSE stream
// the hub ends is resumed after its last event.
func (w *benchWatcher) read(ctx context.Context) {
	if w.b.cfg.WatchMQTT != "" {
		sr := &stampReader{r: w.body, start: w.b.start}
		w.readMQTT(bufio.NewReaderSize(sr, watchReadBuffer), sr)
		return
	}
	for {
		w.readSSE(w.body)
		body, err := w.b.openSSE(ctx, w.lastID)
		if err != nil {
			return
		}
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			_ = body.Close()
			return
		}
		_ = w.body.Close()
		w.body = body
		w.mu.Unlock()
		w.resumes.Add(1)
	}
}

// readSSE reads one SSE stream until it ends.
func (w *benchWatcher) readSSE(body io.Reader) {
	sr := &stampReader{r: body, start: w.b.start}
	br := bufio.NewReaderSize(sr, watchReadBuffer)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
		if data, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			w.deliver(data, sr.now)
		} else if id, ok := bytes.CutPrefix(line, []byte("id:")); ok {
			w.lastID = append(w.lastID[:0], bytes.TrimSpace(id)...)
		}
	}
}

// close ends the watcher's stream; read returns.
func (w *benchWatcher) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	_ = w.body.Close()
}

func (w *benchWatcher) readMQTT(br *bufio.Reader, sr *stampReader) {
	r := mqttReader{r: br}
	for {
		typ, flags, body, err := r.next()
		if err != nil {
			return
		}
		if typ != mqttPublish {
			continue
		}
		if payload, err := mqttPublishPayload(flags, body); err == nil {
			w.deliver(payload, sr.now)
		}
	}
}

// deliver counts one message received at now (µs since the run's start)
// and records its latency when it was sent after the warm-up.
func (w *benchWatcher) deliver(msg []byte, now int64) {
	w.n.Add(1)
	w.last.Store(now)
	sent, ok := sentMicros(msg)
	if !ok {
		return
	}
	if sinceStart := sent - w.b.start.UnixMicro(); sinceStart >= int64(w.b.cfg.Warmup/time.Microsecond) {
		w.hist.Record(time.Duration(now-sinceStart) * time.Microsecond)
	}
}

// sentMicros finds the send time in a message: the sent_us member of a
// device payload, or the value of the hub's event of metric sent_us.
func sentMicros(msg []byte) (int64, bool) {
	i := bytes.Index(msg, []byte(`"sent_us":`))
	switch {
	case i >= 0:
		msg = msg[i+len(`"sent_us":`):]
	case bytes.Contains(msg, []byte(`"metric":"sent_us"`)):
		j := bytes.Index(msg, []byte(`"value":`))
		if j < 0 {
			return 0, false
		}
		msg = msg[j+len(`"value":`):]
	default:
		return 0, false
	}
	var v int64
	n := 0
	for ; n < len(msg) && msg[n] >= '0' && msg[n] <= '9'; n++ {
		v = v*10 + int64(msg[n]-'0')
	}
	return v, n > 0 && n <= maxSentDigits
}

// maxSentDigits bounds the digits of a send time, so that it fits an
// int64 (microseconds since 1970 have 16 digits until the year 2286).
const maxSentDigits = 18
