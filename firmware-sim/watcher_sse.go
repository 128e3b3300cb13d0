package firmwaresim

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxSSELine bounds the part of one SSE line a watcher keeps; the rest of
// a longer line is skipped (the hub's lines are far shorter).
const maxSSELine = 1 << 20

// sseParser reads the hub's Server-Sent Events stream as it
// arrives, in chunks split anywhere. It keeps no copy of an event: it
// notes the id, the kind and the data's "ts" of the event being read and
// acts on them at the blank line that ends it. Lines end with "\n" or
// "\r\n". A parser is used by one goroutine.
type sseParser struct {
	hist *Histogram // device → watcher latency of telemetry events

	partial []byte // an incomplete line carried over from the previous chunk
	skip    bool   // partial hit maxSSELine: the rest of the line is dropped

	// The event being read.
	id      []byte // value of its id field
	hasID   bool
	hasData bool
	kind    eventKind
	ts      int64 // Unix ms of its data's "ts"
	hasTS   bool

	lastID []byte // id of the last event dispatched: the resume point
}

// reset forgets a partly read line and event, as at the start of a new
// connection; the resume point stays.
func (p *sseParser) reset() {
	p.partial, p.skip = p.partial[:0], false
	p.endEvent()
}

func (p *sseParser) endEvent() {
	p.hasID, p.hasData, p.kind, p.hasTS = false, false, kindOther, false
}

// feed parses the next chunk of the stream, received at nowUS (Unix µs),
// and returns the events (with an id) and resets it completed.
func (p *sseParser) feed(b []byte, nowUS int64) (events, resets uint64) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			p.carry(b)
			return events, resets
		}
		line := b[:i]
		b = b[i+1:]
		if len(p.partial) > 0 || p.skip {
			p.carry(line)
			line, p.partial, p.skip = p.partial, p.partial[:0], false
		}
		line = line[:min(len(line), maxSSELine)]
		e, r := p.line(bytes.TrimSuffix(line, []byte("\r")), nowUS)
		events += e
		resets += r
	}
	return events, resets
}

// carry keeps the start of a line that goes on in the next chunk.
func (p *sseParser) carry(b []byte) {
	room := maxSSELine - len(p.partial)
	if len(b) > room {
		b, p.skip = b[:room], true
	}
	p.partial = append(p.partial, b...)
}

// line handles one line; a blank line dispatches the event read so far.
func (p *sseParser) line(l []byte, nowUS int64) (events, resets uint64) {
	if len(l) == 0 {
		return p.dispatch(nowUS)
	}
	if l[0] == ':' {
		return 0, 0 // a comment: ": ping"
	}
	name, value, _ := bytes.Cut(l, []byte(":"))
	value = bytes.TrimPrefix(value, []byte(" "))
	switch string(name) {
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			p.id, p.hasID = append(p.id[:0], value...), true
		}
	case "event":
		p.kind = kindOf(value)
	case "data":
		p.hasData = true
		if ts, ok := dataMillis(value); ok {
			p.ts, p.hasTS = ts, true
		}
	}
	return 0, 0
}

// dispatch ends the event being read: an event with an id counts as
// delivered (and, for telemetry, its latency is recorded) and becomes the
// resume point; a reset is counted.
func (p *sseParser) dispatch(nowUS int64) (events, resets uint64) {
	defer p.endEvent()
	if !p.hasData {
		return 0, 0
	}
	if p.kind == kindReset {
		return 0, 1
	}
	if !p.hasID {
		return 0, 0
	}
	p.lastID = append(p.lastID[:0], p.id...)
	if p.kind == kindTelemetry && p.hasTS && p.hist != nil {
		p.hist.Record(time.Duration(nowUS-p.ts*1000) * time.Microsecond)
	}
	return 1, 0
}

// sseURL returns the hub's SSE watcher URL for filters.
func sseURL(hub string, filters []string) string {
	return strings.TrimSuffix(hub, "/") + "/v1/stream?" + url.Values{"topic": filters}.Encode()
}

// newSSEClient returns the HTTP client of SSE watchers: no overall timeout
// (streams last the run), a bounded wait for the answer's headers, and
// large read buffers so that one read takes many events.
func newSSEClient(cfg *Config, tlsCfg *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:       tlsCfg,
		DialContext:           (&net.Dialer{Timeout: cfg.ConnectTimeout}).DialContext,
		ResponseHeaderTimeout: cfg.ConnectTimeout,
		MaxIdleConnsPerHost:   -1,
		DisableCompression:    true,
		ReadBufferSize:        watchReadBuffer,
	}}
}

// sseSession opens one SSE stream, resuming after the last event received,
// and reads it until it ends. It reports whether the hub accepted the
// stream.
func (w *watcher) sseSession(ctx context.Context) (bool, error) {
	resp, err := w.g.openSSE(ctx, w.sse.lastID)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	w.connected()
	defer w.g.online.Add(-1)
	w.sse.reset()
	return true, w.readSSE(resp.Body)
}

// openSSE sends the stream request and checks the answer.
func (g *watchGroup) openSSE(ctx context.Context, lastID []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.sseURL, nil)
	if err != nil {
		return nil, fmt.Errorf("stream request: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	g.s.cfg.setWatchToken(req.Header)
	if len(lastID) > 0 {
		req.Header.Set("Last-Event-ID", string(lastID))
	}
	g.sem <- struct{}{}
	resp, err := g.client.Do(req)
	<-g.sem
	if err != nil {
		return nil, fmt.Errorf("GET /v1/stream: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			hint = " (watchers need a watcher token covering their filters: --watch-token)"
		}
		return nil, fmt.Errorf("%w: GET /v1/stream: HTTP %d: %s%s", ErrHubResponse, resp.StatusCode, bytesHead(body), hint)
	}
	return resp, nil
}

// readSSE feeds the stream to the parser until it ends, one read at a
// time: every event of a read shares that read's receive time.
func (w *watcher) readSSE(body io.Reader) error {
	if w.buf == nil {
		w.buf = make([]byte, watchReadBuffer)
	}
	for {
		n, err := body.Read(w.buf)
		if n > 0 {
			now := time.Now().UnixMicro()
			events, resets := w.sse.feed(w.buf[:n], now)
			w.delivered(events, now)
			if resets > 0 {
				w.g.resets.Add(resets)
			}
		}
		if err != nil {
			return fmt.Errorf("read stream: %w", err)
		}
	}
}
