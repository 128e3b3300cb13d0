package firmwaresim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/lxzan/gws"
)

// wsDeadlineEvery is how often, at most, a busy WebSocket watcher pushes
// its read deadline out: not on every event.
const wsDeadlineEvery = time.Second

// wsSession opens one WebSocket watcher connection, subscribes (resuming
// after the last event received) and reads until the connection ends, on
// the calling goroutine. It reports whether the hub confirmed the
// subscription.
func (w *watcher) wsSession(ctx context.Context) (bool, error) {
	cfg := &w.g.s.cfg
	h := &wsWatch{w: w, readTimeout: max(time.Minute, 3*cfg.Heartbeat), connectTimeout: cfg.ConnectTimeout}
	opt := &gws.ClientOption{
		Addr:             w.g.wsURL,
		HandshakeTimeout: cfg.ConnectTimeout,
		ReadBufferSize:   watchReadBuffer,
		NewDialer: func() (gws.Dialer, error) {
			return ctxDialer{ctx: ctx, d: net.Dialer{Timeout: cfg.ConnectTimeout}}, nil
		},
		Logger:        gwsLogger{w.g.s},
		TlsConfig:     w.g.s.tlsClone(),
		RequestHeader: http.Header{},
	}
	cfg.setWatchToken(opt.RequestHeader)
	w.g.sem <- struct{}{}
	conn, resp, err := gws.NewClient(h, opt)
	<-w.g.sem
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return false, fmt.Errorf("%w: websocket %s: HTTP %d: %w", ErrHubResponse, opt.Addr, resp.StatusCode, err)
		}
		return false, fmt.Errorf("websocket %s: %w", opt.Addr, err)
	}
	w.conn.Store(conn)
	defer w.conn.Store(nil)
	if w.g.stopped() {
		_ = conn.WriteClose(1000, nil)
		return false, errWatchStopped
	}
	readLoop(conn, h)
	if h.subscribed {
		w.g.online.Add(-1)
	}
	return h.subscribed, h.err()
}

// errWatchStopped: the run ended while a watcher was connecting.
var errWatchStopped = errors.New("watchers stopped")

// subscribeFrame returns the subscribe message of filters, resuming after
// lastID when it is set.
func subscribeFrame(filters []string, lastID []byte) ([]byte, error) {
	b, err := json.Marshal(struct {
		Op          string   `json:"op"`
		Topics      []string `json:"topics"`
		LastEventID string   `json:"last_event_id,omitempty"`
	}{"subscribe", filters, string(lastID)})
	if err != nil {
		return nil, fmt.Errorf("encode subscribe: %w", err)
	}
	return b, nil
}

// wsWatch handles the events of one WebSocket watcher connection. Every
// method runs on the connection's read loop, which is the watcher's own
// goroutine.
type wsWatch struct {
	w              *watcher
	readTimeout    time.Duration
	connectTimeout time.Duration
	subscribed     bool
	extended       time.Time // when the read deadline was last pushed out
	closeErr       error
	hubError       string // message of the latest op error
}

// err returns why the connection ended.
func (h *wsWatch) err() error {
	if h.hubError != "" && !h.subscribed {
		return fmt.Errorf("%w: subscribe refused: %s", ErrHubResponse, h.hubError)
	}
	return h.closeErr
}

// OnOpen sends the subscription; the hub must confirm it within the
// connect timeout.
func (h *wsWatch) OnOpen(c *gws.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(h.connectTimeout))
	frame, err := subscribeFrame(h.w.g.filters, h.w.lastID)
	if err == nil {
		err = c.WriteMessage(gws.OpcodeText, frame)
	}
	if err != nil {
		h.closeErr = err
		_ = c.NetConn().Close()
	}
}

// OnClose notes why the connection ended.
func (h *wsWatch) OnClose(_ *gws.Conn, err error) {
	if h.closeErr == nil {
		h.closeErr = err
	}
}

// OnPing answers the hub's ping.
func (h *wsWatch) OnPing(c *gws.Conn, payload []byte) {
	h.extend(c, time.Now())
	_ = c.WritePong(payload)
}

// OnPong ignores pongs: watchers do not ping.
func (h *wsWatch) OnPong(*gws.Conn, []byte) {}

// OnMessage counts events, records the latency of telemetry and follows
// the subscription's state.
func (h *wsWatch) OnMessage(c *gws.Conn, msg *gws.Message) {
	now := time.Now()
	m, err := parseWSMessage(msg.Bytes())
	if err != nil {
		_ = msg.Close()
		h.w.g.s.log.Debug("bad watcher message", "watcher", h.w.index, "err", err)
		return
	}
	if m.Op == wsOpEvent {
		h.w.event(&m, now.UnixMicro())
	}
	_ = msg.Close() // m.ID points into the message: used up by now
	h.control(c, &m, now)
}

// control acts on the subscription messages, and keeps the read deadline
// ahead.
func (h *wsWatch) control(c *gws.Conn, m *wsMessage, now time.Time) {
	switch m.Op {
	case wsOpSubscribed:
		if !h.subscribed {
			h.subscribed = true
			h.w.connected()
		}
	case wsOpReset:
		h.w.g.resets.Add(1)
	case wsOpError:
		h.hubError = m.Message
		h.w.g.errors.Add(1)
		h.w.g.s.log.Warn("hub refused a watcher message", "watcher", h.w.index, "message", m.Message)
	}
	if h.subscribed && now.Sub(h.extended) >= wsDeadlineEvery {
		h.extend(c, now)
	}
}

// extend pushes the read deadline out once subscribed.
func (h *wsWatch) extend(c *gws.Conn, now time.Time) {
	if h.subscribed {
		h.extended = now
		_ = c.SetReadDeadline(now.Add(h.readTimeout))
	}
}

// event counts one WebSocket event and records its latency.
func (w *watcher) event(m *wsMessage, nowUS int64) {
	w.lastID = append(w.lastID[:0], m.ID...)
	if m.Kind == kindTelemetry && m.HasTS {
		w.hist.Record(time.Duration(nowUS-m.TS*1000) * time.Microsecond)
	}
	w.delivered(1, nowUS)
}
