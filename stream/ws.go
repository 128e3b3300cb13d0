package stream

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lxzan/gws"

	"github.com/telehub/telehub/internal/httpx"
	"github.com/telehub/telehub/internal/topic"
	"github.com/telehub/telehub/internal/wsframe"
)

// WebSocket limits and close codes of watcher connections. Watchers send
// small messages, so a small read buffer spares idle connections memory.
const (
	wsMaxMessage   = 64 << 10
	wsReadBuffer   = 1 << 10
	closeGoingAway = 1001
	closePolicy    = 1008 // sent to watchers that do not keep up
	closeTooLarge  = 1009
	closeInternal  = 1011
)

// newUpgrader returns the gws upgrader of the hub's watcher endpoint.
func newUpgrader(h *Hub) *gws.Upgrader {
	return gws.NewUpgrader(wsEvents{h: h}, &gws.ServerOption{
		ReadMaxPayloadSize: wsMaxMessage,
		ReadBufferSize:     wsReadBuffer,
		CheckUtf8Enabled:   true,
		ParallelEnabled:    false,
		HandshakeTimeout:   h.cfg.WriteTimeout,
		Logger:             gwsLogger{h: h},
		Recovery:           gws.Recovery,
		NewSession:         func() gws.SessionStorage { return new(wsSession) },
	})
}

// ServeWS serves GET /v1/stream/ws: a WebSocket watcher that subscribes
// and unsubscribes with JSON messages. A request whose Origin is
// not allowed gets 403 before the upgrade, one Config.Authorize refuses
// 401; a hub shutting down gets 503.
func (h *Hub) ServeWS(w http.ResponseWriter, r *http.Request) {
	if !h.originAllowed(r) {
		httpx.Error(w, http.StatusForbidden, httpx.CodeForbidden, "origin not allowed")
		return
	}
	allow, ok := h.authorize(w, r)
	if !ok {
		return
	}
	if h.isClosed() {
		httpx.Error(w, http.StatusServiceUnavailable, httpx.CodeUnavailable, ErrClosed.Error())
		return
	}
	if problem := httpx.UpgradeProblem(r); problem != "" {
		httpx.Error(w, http.StatusBadRequest, httpx.CodeBadRequest, problem)
		return
	}
	conn, err := h.upgrader.Upgrade(w, r)
	if err != nil {
		h.log.Debug("websocket watcher upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	c := newWSConn(h, conn)
	c.allow = allow
	c.w.valid = h.recheckOf(r)
	if err := h.register(c.w, nil, "", false, 2); err != nil {
		c.close(closeGoingAway, "server shutting down")
		return
	}
	conn.Session().Store(sessionKey, c)
	s := newWSSink(conn.NetConn(), h.cfg.WriteTimeout)
	c.w.setDirect(s.direct())
	go c.readLoop()
	go c.writeLoop(s, r.RemoteAddr)
}

// originAllowed reports whether r may open a WebSocket watcher: no Origin
// header, the request's own host, or an origin of Config.AllowedOrigins.
func (h *Hub) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || h.origins["*"] || h.origins[strings.ToLower(origin)] {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// originSet returns the allowed origins, lower-cased, as a set.
func originSet(origins []string) map[string]bool {
	set := make(map[string]bool, len(origins))
	for _, o := range origins {
		set[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	return set
}

// wsConn is one WebSocket watcher: the watcher, its gws connection, and
// the end of its read loop.
type wsConn struct {
	h          *Hub
	w          *watcher
	conn       *gws.Conn
	readerDone chan struct{}
	readWait   time.Duration
	allow      func(topic.Filter) bool // nil: every filter
}

// newWSConn returns the watcher state of conn.
func newWSConn(h *Hub, conn *gws.Conn) *wsConn {
	c := &wsConn{h: h, conn: conn, readerDone: make(chan struct{})}
	// Cut by deadline, not Close: closing a TLS connection may block.
	c.w = newWatcher(formatWS, func() { _ = conn.NetConn().SetWriteDeadline(time.Unix(1, 0)) })
	c.readWait = 2*h.cfg.Heartbeat + h.cfg.Heartbeat/2
	return c
}

// readLoop runs gws's read loop; the hub waits for it. gws panics reading
// a frame whose 64-bit length has its top bit set (it takes the length
// for a negative one): the panic is recovered and the connection closed
// with 1009, as for any frame over the limit, so that one frame of a
// watcher cannot end the process.
func (c *wsConn) readLoop() {
	defer c.h.wg.Done()
	defer close(c.readerDone)
	defer func() {
		if e := recover(); e != nil {
			c.h.log.Warn("websocket watcher closed: a frame the hub cannot read", "panic", e)
			c.close(closeTooLarge, "message too large")
		}
	}()
	c.conn.ReadLoop()
}

// writeLoop is the watcher's writer goroutine, writing to s; it owns the
// watcher's registration and closes the connection when it ends.
func (c *wsConn) writeLoop(s *wsSink, remote string) {
	defer c.h.wg.Done()
	defer c.h.unregister(c.w)
	e, err := c.h.serve(c.w, s, c.readerDone)
	c.h.logEnd(transportWS, remote, e, err)
	switch {
	case c.w.aborted.Load(), errors.Is(err, os.ErrDeadlineExceeded):
		// A write was cut or timed out, maybe inside a frame: a close
		// frame can neither get through nor be framed right.
		_ = c.conn.NetConn().Close()
	case e == endShutdown:
		c.close(closeGoingAway, "server shutting down")
	case e == endSlow:
		c.close(closePolicy, "slow consumer")
	case e == endRevoked:
		c.close(closeRevoked, "revoked")
	case e == endError && errors.Is(err, errReplay):
		c.close(closeInternal, "replay failed")
	default:
		_ = c.conn.NetConn().Close()
	}
}

// close sends a close frame with code and reason, then closes the
// connection, which ends the read loop.
func (c *wsConn) close(code uint16, reason string) {
	_ = c.conn.NetConn().SetWriteDeadline(time.Now().Add(c.h.cfg.WriteTimeout))
	if err := c.conn.WriteClose(code, []byte(reason)); err != nil {
		_ = c.conn.NetConn().Close()
	}
}

// extend pushes the read deadline out: any frame or pong is a sign of life.
func (c *wsConn) extend() {
	_ = c.conn.SetReadDeadline(time.Now().Add(c.readWait))
}

// handle acts on one watcher message and queues the answer.
func (c *wsConn) handle(b []byte) {
	req, err := parseRequest(b, c.h.cfg.MaxFilters)
	if err == nil {
		err = c.apply(req)
	}
	if err != nil && !errors.Is(err, ErrClosed) {
		c.h.control(c.w, &frame{b: wsMessage(wsOpMessage{Op: opError, Message: err.Error()})})
	}
}

// apply carries out a parsed request.
func (c *wsConn) apply(req request) error {
	topics := filterStrings(req.filters)
	if req.op == opUnsubscribe {
		ack := &frame{b: wsMessage(wsOpMessage{Op: opUnsubscribed, Topics: topics})}
		return c.h.unsubscribe(c.w, req.filters, ack)
	}
	if c.w.valid != nil && !c.w.valid() {
		return fmt.Errorf("%w: this watcher's credential was revoked", ErrForbidden)
	}
	if err := allowed(c.allow, req.filters); err != nil {
		return err
	}
	ack := &frame{b: wsMessage(wsOpMessage{Op: opSubscribed, Topics: topics})}
	return c.h.subscribe(c.w, req.filters, req.from, req.from != "", ack)
}

// wsEvents receives gws's connection events for every watcher.
type wsEvents struct{ h *Hub }

// conn returns the watcher state stored in socket's session.
func (wsEvents) conn(socket *gws.Conn) *wsConn {
	v, _ := socket.Session().Load(sessionKey)
	c, _ := v.(*wsConn)
	return c
}

// OnOpen sets the first read deadline.
func (e wsEvents) OnOpen(socket *gws.Conn) {
	if c := e.conn(socket); c != nil {
		c.extend()
	}
}

// OnClose does nothing: the writer learns of the end from the read loop.
func (wsEvents) OnClose(*gws.Conn, error) {}

// OnPing extends the read deadline and queues a pong in order with the
// watcher's frames: every write to a watcher's connection goes through its
// backlog, so that no pong lands inside a frame that a non-blocking write
// (direct.go) left half written.
func (e wsEvents) OnPing(socket *gws.Conn, payload []byte) {
	c := e.conn(socket)
	if c == nil {
		_ = socket.WritePong(payload)
		return
	}
	c.extend()
	c.h.control(c.w, &frame{b: wsframe.AppendFrame(nil, wsframe.OpPong, payload)})
}

// OnPong extends the read deadline.
func (e wsEvents) OnPong(socket *gws.Conn, _ []byte) {
	if c := e.conn(socket); c != nil {
		c.extend()
	}
}

// OnMessage handles a watcher message.
func (e wsEvents) OnMessage(socket *gws.Conn, msg *gws.Message) {
	defer msg.Close()
	if c := e.conn(socket); c != nil {
		c.extend()
		c.handle(msg.Bytes())
	}
}

// wsSink writes pre-encoded frames straight to the network connection, one
// write per call: writev on TCP, one concatenated buffer otherwise. Go
// serializes whole writes on one connection, so gws's own control frames
// (pongs, close) never land inside ours.
type wsSink struct {
	conn    net.Conn
	tcp     *net.TCPConn
	timeout time.Duration
	buf     []byte
}

// newWSSink returns a sink writing to conn.
func newWSSink(conn net.Conn, timeout time.Duration) *wsSink {
	under := conn
	if u, ok := conn.(interface{ Unwrap() net.Conn }); ok { // a connection wrapped to be counted
		under = u.Unwrap()
	}
	tcp, _ := under.(*net.TCPConn)
	return &wsSink{conn: conn, tcp: tcp, timeout: timeout}
}

// write writes bufs as one write under the write deadline, then lifts the
// deadline so that gws's pongs are not cut by a stale one.
func (s *wsSink) write(bufs [][]byte) error {
	if err := s.conn.SetWriteDeadline(time.Now().Add(s.timeout)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	var err error
	switch {
	case len(bufs) == 1:
		_, err = s.conn.Write(bufs[0])
	case s.tcp != nil:
		nb := net.Buffers(bufs)
		_, err = nb.WriteTo(s.tcp)
	default:
		err = s.writeJoined(bufs)
	}
	if err != nil {
		return err
	}
	return s.conn.SetWriteDeadline(time.Time{})
}

// direct returns the connection for the fan-out goroutine's non-blocking
// writes: a plain TCP connection only.
func (s *wsSink) direct() *directConn {
	if s.tcp == nil {
		return nil
	}
	if tw := newSocketWriter(s.tcp); tw != nil {
		return &directConn{tryWriter: tw}
	}
	return nil
}

// writeRaw writes b, whole frames or the rest of some, under the write
// deadline.
func (s *wsSink) writeRaw(b []byte) error {
	return s.write([][]byte{b})
}

// writeJoined writes bufs concatenated, with one Write.
func (s *wsSink) writeJoined(bufs [][]byte) error {
	for _, b := range bufs {
		s.buf = append(s.buf, b...)
	}
	_, err := s.conn.Write(s.buf)
	s.buf = s.buf[:0]
	if cap(s.buf) > keepBytes {
		s.buf = nil
	}
	return err
}

// gwsLogger passes gws's error logs to the hub's logger.
type gwsLogger struct{ h *Hub }

// Error logs v at error level.
func (l gwsLogger) Error(v ...any) {
	l.h.log.Error("websocket watcher", "detail", fmt.Sprint(v...))
}

// sessionKey is the session key of a connection's *wsConn.
const sessionKey = "watcher"

// wsSession is a gws session holding one value: the *wsConn of its
// connection. It spares each connection a map.
type wsSession struct {
	mu    sync.Mutex
	key   string
	value any
	set   bool
}

// Len returns 1 when a value is stored, else 0.
func (s *wsSession) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set {
		return 1
	}
	return 0
}

// Load returns the value stored under key.
func (s *wsSession) Load(key string) (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set && s.key == key {
		return s.value, true
	}
	return nil, false
}

// Delete removes the value stored under key.
func (s *wsSession) Delete(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set && s.key == key {
		s.key, s.value, s.set = "", nil, false
	}
}

// Store stores value under key, replacing whatever was stored.
func (s *wsSession) Store(key string, value any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.key, s.value, s.set = key, value, true
}

// Range calls f with the stored value, if any.
func (s *wsSession) Range(f func(key string, value any) bool) {
	s.mu.Lock()
	key, value, set := s.key, s.value, s.set
	s.mu.Unlock()
	if set {
		f(key, value)
	}
}
