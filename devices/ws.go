package devices

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/lxzan/gws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/httpx"
	"github.com/telehub/telehub/internal/metrics"
	"github.com/telehub/telehub/internal/topic"
)

// Defaults of WSConfig.
const (
	// DefaultWSHeartbeat is the default interval of the hub's pings to
	// WebSocket devices (--heartbeat-interval).
	DefaultWSHeartbeat = 15 * time.Second
	// DefaultWSMaxInflight is the default number of a connection's frames
	// that may wait for their answer before the hub stops reading it.
	DefaultWSMaxInflight = 256
)

// WebSocket close codes the hub sends besides those gws sends itself
// (1009 frame too large, 1007 invalid UTF-8).
const (
	closeGoingAway = 1001 // the hub shuts down, or the device was silent (closeSilent)
	closeInternal  = 1011 // the hub failed handling a frame
	closeReplaced  = 4000 // a newer connection of the device replaced this one
)

const (
	// wsReadBufferSize is the read buffer each connection holds while it
	// is open. Small, to keep idle connections cheap: gws reads frames
	// larger than the buffer directly into the message.
	wsReadBufferSize = 256
	// wsCloseTimeout bounds writing a close frame to a peer that does not
	// read.
	wsCloseTimeout = time.Second
	// readGrace is how long past the device timeout a silent connection
	// is kept before its read deadline closes it.
	readGrace = time.Second
	// maxAnswerMessage bounds the message of an error answer, in bytes.
	maxAnswerMessage = 512
	// maxPooledBuffer is the largest write buffer kept for reuse.
	maxPooledBuffer = 64 << 10
)

// WSConfig configures the WebSocket device endpoint.
type WSConfig struct {
	// Bridge ingests readings and records rejected frames. Required; in
	// telehub the *bridge.Bridge.
	Bridge Ingester
	// Presence learns of connections, frames and pongs. Required; in
	// telehub the *presence.Tracker.
	Presence Presence
	// MaxPayload is the largest frame accepted, in bytes; a larger one
	// closes the connection with 1009 (--max-payload). Default 65536.
	MaxPayload int
	// Heartbeat is the interval of the hub's pings, sent to all
	// connections by one ticker (--heartbeat-interval). Default 15s.
	Heartbeat time.Duration
	// Timeout closes a connection from which nothing (no frame, no pong)
	// arrived for this long (plus a grace of a second), with close code
	// 1001 "timeout", and bounds each write to it. Default 45s.
	Timeout time.Duration
	// MaxInflight is how many frames of one connection may wait for their
	// answer (an ack waits for the durable commit) before the hub stops
	// reading from it. Default 256.
	MaxInflight int
	// Authenticate decides whether the upgrade request may connect as
	// device, typically by checking httpx.RequestToken(r). false answers HTTP
	// 401 before the upgrade. Default nil: no authentication.
	Authenticate func(r *http.Request, device string) bool
	// Commands, when set, learns of connections and receives the devices'
	// command answers; without it command answers are refused as unknown
	// frames. Default nil.
	Commands Commander
	// Logger receives the endpoint's logs. Default: logs are discarded.
	Logger *slog.Logger
	// Metrics counts connected devices (DevicesConnected{transport="ws"}).
	// Default a private set.
	Metrics *metrics.Metrics
}

// withDefaults validates c and returns it with defaults filled.
func (c WSConfig) withDefaults() (WSConfig, error) {
	if c.Bridge == nil || c.Presence == nil {
		return c, fmt.Errorf("%w: websocket endpoint needs a Bridge and a Presence", ErrInvalidConfig)
	}
	if c.MaxPayload < 0 || c.Heartbeat < 0 || c.Timeout < 0 || c.MaxInflight < 0 {
		return c, fmt.Errorf("%w: negative websocket limit", ErrInvalidConfig)
	}
	c.MaxPayload = valueOr(c.MaxPayload, DefaultMaxPayload)
	c.Heartbeat = valueOr(c.Heartbeat, DefaultWSHeartbeat)
	c.Timeout = valueOr(c.Timeout, DefaultDeviceTimeout)
	c.MaxInflight = valueOr(c.MaxInflight, DefaultWSMaxInflight)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Metrics = metrics.OrNew(c.Metrics)
	return c, nil
}

// valueOr returns def when v is zero.
func valueOr[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// WS is the WebSocket device endpoint, GET /v1/devices/{id}/ws.
//
// Each frame is answered in frame order: an ack once its readings are
// durably stored (a duplicate seq is acked too), an error answer for a
// frame that is not valid. Answers are queued per connection and written,
// as many as are ready, with one socket write.
//
// # Caveats
//
// A device that sends faster than its readings are stored is paced: once
// MaxInflight of its frames wait for their answer, the hub stops reading
// from it until acks go out. A Heartbeat not shorter than Timeout
// disconnects idle but healthy devices between pings (NewWS logs a
// warning). Answers not yet written when a connection closes are lost;
// devices resend what was not acked.
type WS struct {
	cfg       WSConfig
	log       *slog.Logger
	upgrader  *gws.Upgrader
	connected prometheus.Gauge
	buffers   sync.Pool // *[]byte write buffers
	// gwsReads reads every connection with gws's ReadLoop, as TLS
	// connections are read; tests set it to run on both read paths.
	gwsReads bool

	mu      sync.Mutex
	devices map[string]*wsConn // the current connection of each device
	loops   int                // connections whose read loop runs
	closing bool
	ticking bool          // the heartbeat goroutine runs
	stop    chan struct{} // closed by Shutdown: stops the heartbeat
	wg      sync.WaitGroup
	// rounds runs the rounds of direct readers (ws_direct.go).
	rounds roundPool
}

// NewWS returns the WebSocket device endpoint. It runs no goroutine until
// the first device connects; Shutdown stops them all.
func NewWS(cfg WSConfig) (*WS, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &WS{
		cfg:       cfg,
		log:       cfg.Logger,
		connected: cfg.Metrics.DevicesConnected.WithLabelValues(bridge.TransportWS),
		devices:   make(map[string]*wsConn),
		stop:      make(chan struct{}),
	}
	if cfg.Heartbeat >= cfg.Timeout {
		s.log.Warn("websocket heartbeat not shorter than the timeout: idle devices will be disconnected between pings",
			"heartbeat", cfg.Heartbeat, "timeout", cfg.Timeout)
	}
	s.upgrader = gws.NewUpgrader(wsEvents{s}, &gws.ServerOption{
		ReadMaxPayloadSize: cfg.MaxPayload,
		ReadBufferSize:     wsReadBufferSize,
		CheckUtf8Enabled:   true,
		ParallelEnabled:    false,
		ParallelGolimit:    1,
		NewSession:         func() gws.SessionStorage { return new(wsSession) }, // the connection's state
		Logger:             gwsLogger{s.log},
		Recovery:           s.recover,
	})
	return s, nil
}

// ServeHTTP upgrades GET /v1/devices/{id}/ws to a device connection; the
// id comes from r.PathValue("id"). A bad id gets 400 and a refused token
// 401, both as the JSON error body, before any upgrade.
func (s *WS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	device := r.PathValue("id")
	if err := topic.ValidDeviceID(device); err != nil {
		httpx.Error(w, http.StatusBadRequest, httpx.CodeBadRequest, err.Error())
		return
	}
	if s.cfg.Authenticate != nil && !s.cfg.Authenticate(r, device) {
		httpx.Unauthorized(w, httpx.RequestToken(r), "a valid device token is required")
		return
	}
	if problem := httpx.UpgradeProblem(r); problem != "" {
		httpx.Error(w, http.StatusBadRequest, httpx.CodeBadRequest, problem)
		return
	}
	if s.isClosing() {
		httpx.Error(w, http.StatusServiceUnavailable, httpx.CodeUnavailable, "hub is shutting down")
		return
	}
	// The session is taken before the upgrade answers, so sessions follow
	// the order of the handshakes: a connection that begins after an
	// earlier one of its device completed its handshake holds the later
	// session and replaces it, however the two read goroutines are
	// scheduled. Its online event is submitted on the read goroutine,
	// which storage may hold up without delaying the handshake.
	session, announce := s.cfg.Presence.Open(device, bridge.TransportWS, bridge.ReasonConnect)
	hw := &silenceWatch{ResponseWriter: w}
	socket, reader, err := s.upgrade(hw, r)
	if err != nil {
		announce()
		s.cfg.Presence.Disconnect(device, session, bridge.ReasonDisconnect)
		s.log.Debug("websocket upgrade failed", "device", device, "err", err)
		return
	}
	s.serve(socket, reader, hw.conn, device, session, announce)
}

// frameReader reads a connection's frames in place of gws's ReadLoop.
type frameReader interface {
	// start handles c's open, then its frames, on goroutines of its own,
	// until the connection ends with s.closed; s.wg counts them already.
	start(c *wsConn)
}

// upgrade takes the connection over from net/http and answers the
// handshake with gws. A plain TCP connection on Unix gets a frameReader
// (and gws no read buffer, which it would hold for nothing); otherwise
// reader is nil and gws's ReadLoop reads the connection. On failure gws
// has answered 400 and closed the connection.
func (s *WS) upgrade(hw *silenceWatch, r *http.Request) (_ *gws.Conn, reader frameReader, _ error) {
	conn, _, err := hw.Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("hijack: %w", err)
	}
	if !s.gwsReads {
		reader = newDirectReader(hw.conn.Conn, hw.conn.takePending())
	}
	var br *bufio.Reader
	if reader == nil {
		br = bufio.NewReaderSize(conn, wsReadBufferSize)
	}
	socket, err := s.upgrader.UpgradeFromConn(conn, br, r)
	return socket, reader, err
}

// Connected returns how many devices are connected.
func (s *WS) Connected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.devices)
}

// Shutdown refuses new connections, closes every connection with 1001 and
// waits until all of the endpoint's goroutines have exited. When ctx ends
// first, it closes the remaining sockets without a close frame and returns
// the context's error. Readings not yet acked are not acked; devices send
// them again when they reconnect.
//
// Only the devices' current connections need closing: a replaced one was
// closed by the connection that replaced it, and one not yet opened closes
// itself when it sees the endpoint closing.
func (s *WS) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		close(s.stop)
	}
	conns := s.snapshot()
	s.mu.Unlock()
	deadline := time.Now().Add(wsCloseTimeout)
	for _, c := range conns {
		c.close(closeGoingAway, "shutdown", deadline)
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		s.rounds.close()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		conns = s.snapshot()
		s.mu.Unlock()
		for _, c := range conns {
			_ = c.socket.NetConn().Close() // unblocks its reads and writes
		}
		return fmt.Errorf("websocket shutdown: %w", ctx.Err())
	}
}

// snapshot returns the current connection of every device. s.mu must be
// held.
func (s *WS) snapshot() []*wsConn {
	conns := make([]*wsConn, 0, len(s.devices))
	for _, c := range s.devices {
		conns = append(conns, c)
	}
	return conns
}

func (s *WS) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// serve starts the read loop of a freshly upgraded connection of device,
// whose socket is conn, with the session taken before the upgrade and the
// announce that submits its online event: reader's, or gws's ReadLoop
// when reader is nil.
func (s *WS) serve(socket *gws.Conn, reader frameReader, conn *silenceConn, device string, session uint64, announce func()) {
	c := connOf(socket)
	c.init(s, socket, device)
	c.session, c.announce = session, announce // c is not shared yet: register makes it current
	conn.owner = c                            // before the read loop: its reads close c when silent
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		announce()
		s.cfg.Presence.Disconnect(device, session, bridge.ReasonDisconnect)
		c.close(closeGoingAway, "shutdown", time.Now().Add(wsCloseTimeout))
		return
	}
	s.loops++
	s.wg.Add(1)
	s.mu.Unlock()
	if reader != nil {
		reader.start(c)
		return
	}
	go s.readLoop(socket)
}

// readLoop runs gws's read loop of socket. gws panics reading a frame
// whose 64-bit length has its top bit set (it takes the length for a
// negative one): such a connection is closed with 1009, as the direct
// reader closes it, instead of the panic ending the process.
func (s *WS) readLoop(socket *gws.Conn) {
	defer s.wg.Done()
	defer func() {
		if e := recover(); e != nil {
			c := connOf(socket)
			s.log.Error("panic reading a device connection", "device", c.device(), "panic", e, "stack", string(debug.Stack()))
			_ = socket.WriteClose(errTooLarge.code, []byte(errTooLarge.reason))
			s.closed(c, fmt.Errorf("reading: %v", e))
		}
	}()
	socket.ReadLoop()
}

// open makes c the device's connection, with the session it took before
// its upgrade, and closes the device's previous connection, if any, with
// 4000 "replaced". It runs on c's read goroutine.
//
// Sessions increase, so of two connections of one device opening at
// once, the one with the later session is kept and the other closed as
// replaced, whichever takes s.mu first.
//
// The session's online event is submitted first, which waits while
// storage's queue is full: only this connection waits.
func (s *WS) open(c *wsConn) {
	c.extend(time.Now()) // no Heard: opening the session before the upgrade was the sign of life
	c.announce()
	c.announce = nil
	session := c.session
	old, ok := s.register(c)
	if !ok {
		if old == nil { // shutting down
			s.cfg.Presence.Disconnect(c.device(), session, bridge.ReasonDisconnect)
			c.close(closeGoingAway, "shutdown", time.Now().Add(wsCloseTimeout))
		} else {
			c.close(closeReplaced, "replaced", time.Now().Add(wsCloseTimeout))
		}
		return
	}
	s.connected.Inc()
	s.log.Debug("device connected", "device", c.device(), "session", session, "remote", c.socket.RemoteAddr())
	if old != nil {
		old.close(closeReplaced, "replaced", time.Now().Add(wsCloseTimeout))
	}
	if s.cfg.Commands != nil {
		s.cfg.Commands.Connected(c.device())
	}
}

// register makes c the device's current connection and returns the one
// it replaces. ok is false when the endpoint is shutting down (old nil) or
// when old, a connection with a later session, is the device's already.
func (s *WS) register(c *wsConn) (old *wsConn, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, false
	}
	old = s.devices[c.device()]
	if old != nil && old.session > c.session {
		return old, false
	}
	s.devices[c.device()] = c
	c.registered = true
	s.startHeartbeat()
	return old, true
}

// began records that a frame of c started a new WebSocket session of its
// device (it had timed out, or gone offline over MQTT). The device's
// current connection owns it: its close ends that session. When no
// connection is current (c was replaced, and its replacement closed), c
// becomes current again; while shutting down the session ends at once.
func (s *WS) began(c *wsConn, session uint64) {
	s.mu.Lock()
	cur := s.devices[c.device()]
	switch {
	case cur != nil:
		cur.session = max(cur.session, session)
	case !s.closing:
		c.session = session
		s.devices[c.device()] = c
		if !c.registered {
			c.registered = true
			s.connected.Inc()
		}
	}
	closing := cur == nil && s.closing
	s.mu.Unlock()
	if closing {
		s.cfg.Presence.Disconnect(c.device(), session, bridge.ReasonDisconnect)
	}
}

// closed forgets c once its read loop ends and, when c was the device's
// current connection, ends its session. A replaced connection ends
// nothing: its replacement holds a later session.
func (s *WS) closed(c *wsConn, err error) {
	c.kill()
	s.mu.Lock()
	s.loops--
	registered, current, session := c.registered, s.devices[c.device()] == c, c.session
	if current {
		delete(s.devices, c.device())
	}
	s.mu.Unlock()
	if !registered {
		return
	}
	if current {
		s.cfg.Presence.Disconnect(c.device(), session, bridge.ReasonDisconnect)
	}
	s.connected.Dec()
	s.log.Debug("device disconnected", "device", c.device(), "session", session, "err", err)
}

// startHeartbeat starts the ping ticker once. s.mu must be held and the
// endpoint not closing.
func (s *WS) startHeartbeat() {
	if s.ticking {
		return
	}
	s.ticking = true
	s.wg.Add(1)
	go s.heartbeat()
}

// heartbeat pings every connection each Heartbeat until Shutdown.
func (s *WS) heartbeat() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.pingAll()
		}
	}
}

// pingAll queues a ping on every device connection.
func (s *WS) pingAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.devices {
		c.queuePing()
	}
}

// recover is the gws recovery handler of the open, close, ping and pong
// callbacks: a panic there is logged and the read loop goes on.
func (s *WS) recover(gws.Logger) {
	if e := recover(); e != nil {
		s.log.Error("panic in websocket device handler", "panic", e, "stack", string(debug.Stack()))
	}
}

// getBuffer returns a write buffer from the pool.
func (s *WS) getBuffer() *[]byte {
	if b, ok := s.buffers.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 4096)
	return &b
}

// putBuffer returns a write buffer to the pool unless it grew too big.
func (s *WS) putBuffer(b *[]byte) {
	if cap(*b) <= maxPooledBuffer {
		*b = (*b)[:0]
		s.buffers.Put(b)
	}
}

// wsEvents adapts the endpoint to gws.Event.
type wsEvents struct{ s *WS }

func (e wsEvents) OnOpen(socket *gws.Conn) { e.s.open(connOf(socket)) }

func (e wsEvents) OnClose(socket *gws.Conn, err error) { e.s.closed(connOf(socket), err) }

func (e wsEvents) OnPing(socket *gws.Conn, payload []byte) {
	c := connOf(socket)
	c.alive(time.Now())
	c.queuePong(payload)
}

func (e wsEvents) OnPong(socket *gws.Conn, _ []byte) { connOf(socket).alive(time.Now()) }

func (e wsEvents) OnMessage(socket *gws.Conn, m *gws.Message) {
	defer m.Close() // nothing of m is kept: the bridge copies what it stores
	connOf(socket).receive(m.Opcode, m.Bytes())
}

// wsSession is a connection's state in the role of its gws session
// storage, which gws allocates with the connection: the connection's
// state is that allocation, and gws gets no map per connection. As a
// session storage it stores nothing.
type wsSession wsConn

func (*wsSession) Len() int                     { return 0 }
func (*wsSession) Load(string) (any, bool)      { return nil, false }
func (*wsSession) Delete(string)                {}
func (*wsSession) Store(string, any)            {}
func (*wsSession) Range(func(string, any) bool) {}

// connOf returns the state of socket.
func connOf(socket *gws.Conn) *wsConn { return (*wsConn)(socket.Session().(*wsSession)) }

// gwsLogger routes the logs of gws to slog.
type gwsLogger struct{ log *slog.Logger }

func (g gwsLogger) Error(v ...any) {
	g.log.Error("websocket: " + strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}
