package devices

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/lxzan/gws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/httpx"
	"github.com/telehub/telehub/internal/metrics"
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
	closeGoingAway = 1001 // the hub shuts down
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

// WebSocket opcodes of the frames the hub writes itself.
const (
	opText = 0x1
	opPing = 0x9
	opPong = 0xA
)

// ingester is what the WebSocket endpoint needs of the bridge;
// *bridge.Bridge implements it.
type ingester interface {
	Telemetry(in bridge.Input, p bridge.Payload, done func(bridge.Result)) error
	Reject(in bridge.Input, err error) bridge.Rejection
}

// wsPresence is what the WebSocket endpoint reports to liveness and asks
// of it; *Liveness implements it.
type wsPresence interface {
	Connect(device, transport, reason string) (session uint64)
	Heard(device, transport string)
	Disconnect(device string, session uint64, reason string)
	Session(device string) (session uint64, online bool)
	LastSeen(device string) (t time.Time, online bool, transport string, ok bool)
}

// WSConfig configures the WebSocket device endpoint.
type WSConfig struct {
	// Bridge ingests readings and records rejected frames. Required; in
	// telehub the *bridge.Bridge.
	Bridge ingester
	// Liveness learns of connections, frames and pongs. Required; in
	// telehub the *Liveness.
	Liveness wsPresence
	// MaxPayload is the largest frame accepted, in bytes; a larger one
	// closes the connection with 1009 (--max-payload). Default 65536.
	MaxPayload int
	// Heartbeat is the interval of the hub's pings, sent to all
	// connections by one ticker (--heartbeat-interval). Default 15s.
	Heartbeat time.Duration
	// Timeout closes a connection from which nothing (no frame, no pong)
	// arrived for this long, and bounds each write to it. Default 45s.
	Timeout time.Duration
	// MaxInflight is how many frames of one connection may wait for their
	// answer (an ack waits for the durable commit) before the hub stops
	// reading from it. Default 256.
	MaxInflight int
	// Authenticate decides whether the upgrade request may connect as
	// device, typically by checking httpx.RequestToken(r). false answers HTTP
	// 401 before the upgrade. Default nil: no authentication.
	Authenticate func(r *http.Request, device string) bool
	// Logger receives the endpoint's logs. Default: logs are discarded.
	Logger *slog.Logger
	// Metrics counts connected devices (DevicesConnected{transport="ws"}).
	// Default a private set.
	Metrics *metrics.Metrics
}

// withDefaults validates c and returns it with defaults filled.
func (c WSConfig) withDefaults() (WSConfig, error) {
	if c.Bridge == nil || c.Liveness == nil {
		return c, fmt.Errorf("%w: websocket endpoint needs a Bridge and a Liveness", ErrInvalidConfig)
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

// WS is the WebSocket device endpoint, GET /v1/devices/{id}/ws (SPEC §4).
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

	mu      sync.Mutex
	devices map[string]*wsConn // the current connection of each device
	loops   int                // connections whose read loop runs
	closing bool
	ticking bool          // the heartbeat goroutine runs
	stop    chan struct{} // closed by Shutdown: stops the heartbeat
	wg      sync.WaitGroup
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
	if err := bridge.ValidDeviceID(device); err != nil {
		httpx.Error(w, http.StatusBadRequest, httpx.CodeBadRequest, err.Error())
		return
	}
	if s.cfg.Authenticate != nil && !s.cfg.Authenticate(r, device) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="telehub"`)
		httpx.Error(w, http.StatusUnauthorized, httpx.CodeUnauthorized, "missing or invalid device token")
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
	socket, err := s.upgrader.Upgrade(w, r)
	if err != nil {
		s.log.Debug("websocket upgrade failed", "device", device, "err", err)
		return
	}
	s.serve(socket, device)
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

// serve starts the read loop of a freshly upgraded connection.
func (s *WS) serve(socket *gws.Conn, device string) {
	c := connOf(socket)
	c.init(s, socket, device)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		c.close(closeGoingAway, "shutdown", time.Now().Add(wsCloseTimeout))
		return
	}
	s.loops++
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		socket.ReadLoop()
	}()
}

// open makes c the device's connection: a new session, and the device's
// previous connection, if any, closed with 4000 "replaced". It runs on c's
// read goroutine.
func (s *WS) open(c *wsConn) {
	c.extend(time.Now()) // no Heard: Connect below is the sign of life
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		c.close(closeGoingAway, "shutdown", time.Now().Add(wsCloseTimeout))
		return
	}
	old := s.devices[c.device()]
	s.devices[c.device()] = c
	c.session = s.cfg.Liveness.Connect(c.device(), bridge.TransportWS, bridge.ReasonConnect)
	c.registered = true
	s.startHeartbeat()
	s.mu.Unlock()
	s.connected.Inc()
	s.log.Debug("device connected", "device", c.device(), "session", c.session, "remote", c.socket.RemoteAddr())
	if old != nil {
		old.close(closeReplaced, "replaced", time.Now().Add(wsCloseTimeout))
	}
}

// closed forgets c once its read loop ends and reports the disconnect,
// which Liveness ignores when a newer connection replaced c.
func (s *WS) closed(c *wsConn, err error) {
	c.kill()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loops--
	if !c.registered {
		return
	}
	session := c.session
	if s.devices[c.device()] == c {
		delete(s.devices, c.device())
		session = s.endingSession(c)
	}
	s.cfg.Liveness.Disconnect(c.device(), session, bridge.ReasonDisconnect)
	s.connected.Dec()
	s.log.Debug("device disconnected", "device", c.device(), "session", session, "err", err)
}

// endingSession returns the session that the close of c, the device's
// current connection, ends: c's own, or a later WebSocket session that
// began when a frame of c arrived after the device had timed out. s.mu must
// be held, so that no other WebSocket connection of the device starts a
// session meanwhile; the session is read before the transport, so that an
// MQTT session begun in between is never taken for c's.
func (s *WS) endingSession(c *wsConn) uint64 {
	session, online := s.cfg.Liveness.Session(c.device())
	if !online || session <= c.session {
		return c.session
	}
	if _, _, transport, _ := s.cfg.Liveness.LastSeen(c.device()); transport != bridge.TransportWS {
		return c.session
	}
	return session
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

// wsConn is one device connection. The read goroutine owns session and
// registered; mu guards the rest.
//
// Every frame but a heartbeat takes a slot in answers, in frame order. A
// slot becomes ready when its answer is known (immediately for an error,
// after the commit for an ack); the writer writes the ready slots at the
// head and frees them. A connection has at most MaxInflight slots: the
// read goroutine waits for space before taking one, which bounds the
// memory of a device that sends faster than the hub stores or than it
// reads its acks.
type wsConn struct {
	ws      *WS
	socket  *gws.Conn
	topic   string // devices/{id}/ws, the source topic of its rejections
	session uint64

	mu      sync.Mutex
	answers []answer // answers[head:] are the slots, in frame order
	head    int
	first   uint64        // frame number of answers[head]
	wake    chan struct{} // made when the read goroutine first waits for space
	pong    string        // the payload of a pong waiting to be written

	registered bool // owned by the read goroutine, like session
	hasPong    bool
	ping       bool // a ping waits to be written
	writing    bool // the writer goroutine runs
	dead       bool // closing or closed: nothing more is written
}

// answer is the answer slot of one frame.
type answer struct {
	seq    uint64
	err    *bridge.Error // nil: ack
	hasSeq bool
	ready  bool
}

// init sets up the state of a new connection of device.
func (c *wsConn) init(s *WS, socket *gws.Conn, device string) {
	c.ws, c.socket = s, socket
	c.topic = "devices/" + device + "/ws" // a copy: the request line is not kept
}

// device returns the connection's device id, a substring of its topic.
func (c *wsConn) device() string { return c.topic[len("devices/") : len(c.topic)-len("/ws")] }

// alive records a sign of life: the read deadline moves on and liveness
// hears of it.
func (c *wsConn) alive(now time.Time) {
	c.extend(now)
	c.ws.cfg.Liveness.Heard(c.device(), bridge.TransportWS)
}

// extend moves the read deadline to Timeout (plus a grace) from now. The
// grace lets the liveness engine declare the silent device offline with
// reason timeout before the connection is closed for it; the close that
// follows is then for a session already offline and publishes nothing.
func (c *wsConn) extend(now time.Time) {
	_ = c.socket.SetReadDeadline(now.Add(c.ws.cfg.Timeout + readGrace)) // a failure closes the connection
}

// receive handles one data frame on the read goroutine. A panic while
// handling it leaves the frame unanswered, so it is logged and the
// connection closed with 1011: the device reconnects and sends again.
func (c *wsConn) receive(op gws.Opcode, data []byte) {
	defer func() {
		if e := recover(); e != nil {
			c.ws.log.Error("panic handling a device frame", "device", c.device(), "panic", e, "stack", string(debug.Stack()))
			c.close(closeInternal, "internal error", time.Now().Add(wsCloseTimeout))
		}
	}()
	now := time.Now()
	c.alive(now)
	in := bridge.Input{Device: c.device(), Transport: bridge.TransportWS, SourceTopic: c.topic, Received: now}
	if op != gws.OpcodeText {
		c.reject(in, bridge.Frame{}, bridge.Errorf("binary frame: frames are JSON text"))
		return
	}
	f, err := bridge.ParseFrame(data)
	switch {
	case err != nil:
		c.reject(in, f, err)
	case f.Type == bridge.FrameHeartbeat:
	case f.Type == bridge.FrameTelemetry:
		c.telemetry(in, f)
	default:
		c.reject(in, f, bridge.Errorf("type %q: unknown frame type", f.Type))
	}
}

// telemetry submits the readings of f; the ack follows the commit.
func (c *wsConn) telemetry(in bridge.Input, f bridge.Frame) {
	n, ok := c.reserve(f.Seq, f.HasSeq)
	if !ok {
		return
	}
	err := c.ws.cfg.Bridge.Telemetry(in, f.Payload, func(r bridge.Result) { c.stored(n, r) })
	if err != nil {
		if errors.As(err, new(*bridge.Error)) {
			c.ws.cfg.Bridge.Reject(in, err) // refused, e.g. over the rate limit: counted like any rejection
		} else {
			c.ws.log.Warn("reading not submitted", "device", c.device(), "err", err)
		}
		c.resolve(n, wireError(err, bridge.CodeInternal))
	}
}

// stored is the done callback of a frame's write, on the store's writer
// goroutine: it must not block.
func (c *wsConn) stored(n uint64, r bridge.Result) {
	if r.Err != nil {
		// The store logs its failed commits, at a rate limit.
		c.ws.log.Debug("reading not stored", "device", c.device(), "err", r.Err)
		c.resolve(n, storeFailure(r.Err))
		return
	}
	c.resolve(n, nil)
}

// storeFailure is the answer to a reading the store failed to store: its
// *bridge.Error when it has one (the hub is out of space), else internal.
func storeFailure(err error) *bridge.Error {
	if be, ok := errors.AsType[*bridge.Error](err); ok {
		return be
	}
	return &bridge.Error{Code: bridge.CodeInternal, Message: "the reading could not be stored"}
}

// reject records a bad frame with the bridge and answers it with an error.
// Every bad frame is answered; the bridge's rate limit only applies to the
// error events it stores.
func (c *wsConn) reject(in bridge.Input, f bridge.Frame, err error) {
	c.ws.cfg.Bridge.Reject(in, err)
	if n, ok := c.reserve(f.Seq, f.HasSeq); ok {
		c.resolve(n, wireError(err, bridge.CodeBadRequest))
	}
}

// wireError returns err as a *bridge.Error, with code when it is not one.
func wireError(err error, code string) *bridge.Error {
	if be, ok := errors.AsType[*bridge.Error](err); ok {
		return be
	}
	return &bridge.Error{Code: code, Message: err.Error()}
}

// reserve takes the next answer slot and returns its frame number, waiting
// while MaxInflight slots are taken; ok is false when the connection died.
func (c *wsConn) reserve(seq uint64, hasSeq bool) (n uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.answers)-c.head >= c.ws.cfg.MaxInflight && !c.dead {
		if c.wake == nil {
			c.wake = make(chan struct{}, 1)
		}
		c.mu.Unlock()
		<-c.wake // only this goroutine sets c.wake
		c.mu.Lock()
	}
	if c.dead {
		return 0, false
	}
	n = c.first + uint64(len(c.answers)-c.head)
	c.answers = append(c.answers, answer{seq: seq, hasSeq: hasSeq})
	return n, true
}

// resolve fills the slot of frame n with its answer (err nil: ack) and
// starts the writer when the slot is at the head. A slot already answered
// keeps its first answer.
func (c *wsConn) resolve(n uint64, err *bridge.Error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead || n < c.first {
		return
	}
	i := c.head + int(n-c.first)
	if i >= len(c.answers) || c.answers[i].ready {
		return
	}
	c.answers[i].ready, c.answers[i].err = true, err
	if i == c.head {
		c.startWriter()
	}
}

// queuePing queues a ping frame.
func (c *wsConn) queuePing() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ping = true
	c.startWriter()
}

// queuePong queues a pong answering a ping of the device; of several
// unanswered pings only the last is answered (RFC 6455 §5.5.3).
func (c *wsConn) queuePong(payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pong = string(payload)
	c.hasPong = true
	c.startWriter()
}

// startWriter starts the writer goroutine unless it runs or c is dead.
// c.mu must be held. A live connection's read loop holds a count of the
// endpoint's WaitGroup, so the Add cannot race with Shutdown's Wait.
func (c *wsConn) startWriter() {
	if c.writing || c.dead {
		return
	}
	c.writing = true
	c.ws.wg.Add(1)
	go c.writeLoop()
}

// writeLoop writes what is ready, one socket write per round, until
// nothing is.
func (c *wsConn) writeLoop() {
	defer c.ws.wg.Done()
	buf := c.ws.getBuffer()
	defer c.ws.putBuffer(buf)
	for {
		b, n, ok := c.take((*buf)[:0])
		*buf = b
		if !ok {
			return
		}
		_, err := c.socket.NetConn().Write(b)
		if !c.written(n, err) {
			return
		}
	}
}

// take encodes the waiting ping, pong and ready answers into b and arms
// the write deadline; n is the number of answers taken. ok is false, and
// the writer stops, when there is nothing to write.
func (c *wsConn) take(b []byte) (_ []byte, n int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dead {
		b, n = c.encode(b)
	}
	if len(b) == 0 {
		c.writing = false
		return b, 0, false
	}
	// Under mu, so that close's shorter deadline, set after dead, wins.
	_ = c.socket.NetConn().SetWriteDeadline(time.Now().Add(c.ws.cfg.Timeout))
	return b, n, true
}

// encode appends the frames waiting to be written. c.mu must be held.
func (c *wsConn) encode(b []byte) (_ []byte, n int) {
	if c.ping {
		c.ping = false
		b = append(b, 0x80|opPing, 0)
	}
	if c.hasPong {
		c.hasPong = false
		b = append(b, 0x80|opPong, byte(len(c.pong)))
		b = append(b, c.pong...)
	}
	for i := c.head; i < len(c.answers) && c.answers[i].ready; i++ {
		b = appendAnswerFrame(b, &c.answers[i])
		n++
	}
	return b, n
}

// written frees the n answers just written and wakes the read goroutine.
// On a write error it closes the socket, which ends the read loop, and
// returns false.
func (c *wsConn) written(n int, err error) bool {
	c.mu.Lock()
	if err != nil {
		c.dead, c.writing = true, false
		c.signal()
		c.mu.Unlock()
		c.ws.log.Debug("write to device failed", "device", c.device(), "err", err)
		_ = c.socket.NetConn().Close()
		return false
	}
	c.free(n)
	c.signal()
	c.mu.Unlock()
	return true
}

// free drops the first n slots, keeping the slice small. c.mu must be held.
func (c *wsConn) free(n int) {
	clear(c.answers[c.head : c.head+n]) // drop the error pointers
	c.head += n
	c.first += uint64(n)
	switch {
	case c.head == len(c.answers) && cap(c.answers) > 32:
		c.answers, c.head = nil, 0 // an idle connection keeps no burst-sized slice
	case c.head == len(c.answers):
		c.answers, c.head = c.answers[:0], 0
	case c.head >= 32 && c.head >= len(c.answers)/2:
		k := copy(c.answers, c.answers[c.head:])
		clear(c.answers[k:])
		c.answers, c.head = c.answers[:k], 0
	}
}

// kill marks c dead and wakes a read goroutine waiting for space.
func (c *wsConn) kill() {
	c.mu.Lock()
	c.dead = true
	c.signal()
	c.mu.Unlock()
}

// signal wakes the read goroutine if it waits for space; it checks again.
// c.mu must be held.
func (c *wsConn) signal() {
	if c.wake == nil {
		return
	}
	select {
	case c.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// close sends a close frame with code and reason, giving up at deadline,
// and closes the socket. Answers not yet written are dropped.
func (c *wsConn) close(code uint16, reason string, deadline time.Time) {
	c.kill()
	_ = c.socket.NetConn().SetWriteDeadline(deadline)
	_ = c.socket.WriteClose(code, []byte(reason)) // closes the socket even when the write fails
}

// appendAnswerFrame appends a's answer as an unmasked text frame.
func appendAnswerFrame(b []byte, a *answer) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0) // room for the longest header used
	b = appendAnswerJSON(b, a)
	return finishFrame(b, start, opText)
}

// finishFrame writes the header of the frame whose payload follows the 4
// bytes reserved at b[start:], shifting the payload when the header is
// shorter. Payloads are under 64 KiB.
func finishFrame(b []byte, start int, opcode byte) []byte {
	n := len(b) - start - 4
	b[start] = 0x80 | opcode
	if n < 126 {
		b[start+1] = byte(n)
		copy(b[start+2:], b[start+4:])
		return b[:len(b)-2]
	}
	b[start+1] = 126
	binary.BigEndian.PutUint16(b[start+2:], uint16(n))
	return b
}

// appendAnswerJSON appends {"type":"ack","seq":N} or
// {"type":"error","seq":N,"code":…,"message":…}, seq only when known.
func appendAnswerJSON(b []byte, a *answer) []byte {
	if a.err == nil {
		b = append(b, `{"type":"ack"`...)
	} else {
		b = append(b, `{"type":"error"`...)
	}
	if a.hasSeq {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, a.seq, 10)
	}
	if a.err != nil {
		b = append(b, `,"code":`...)
		b = appendJSONString(b, a.err.Code, maxAnswerMessage)
		b = append(b, `,"message":`...)
		b = appendJSONString(b, a.err.Message, maxAnswerMessage)
	}
	return append(b, '}')
}

// appendJSONString appends s, cut to at most limit bytes on a rune
// boundary, as a JSON string. Invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string, limit int) []byte {
	const hex = "0123456789abcdef"
	if len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
