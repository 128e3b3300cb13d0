package devices

import (
	"errors"
	"runtime/debug"
	"sync"
	"time"

	"github.com/lxzan/gws"
	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/wsframe"
)

// wsConn is one device connection. WS.mu guards session and registered;
// mu guards the rest.
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
	// announce submits the online event of the session taken before the
	// upgrade; the read goroutine calls it first, then drops it.
	announce func()

	mu      sync.Mutex
	answers []answer // answers[head:] are the slots, in frame order
	head    int
	first   uint64        // frame number of answers[head]
	wake    chan struct{} // made when the read goroutine first waits for space
	// pacer is the read goroutine's timer while the rate limit slows the
	// device; made on the first wait, reused after. stopped is closed
	// when c dies and ends such a wait; made on the first wait too (most
	// connections never wait, and an idle connection's every byte counts).
	pacer   *time.Timer
	stopped chan struct{}
	pong    string // the payload of a pong waiting to be written
	// commands are command frames (JSON) waiting to be written.
	commands [][]byte

	registered bool // counted in DevicesConnected; guarded by WS.mu, like session
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

// alive records a sign of life: the read deadline moves on and presence
// hears of it.
func (c *wsConn) alive(now time.Time) {
	c.extend(now)
	if session, started := c.ws.cfg.Presence.Heard(c.device(), bridge.TransportWS); started {
		c.ws.began(c, session)
	}
}

// extend moves the read deadline to Timeout (plus a grace) from now. The
// grace lets the presence engine declare the silent device offline with
// reason timeout before the connection is closed for it (1001 "timeout",
// by silenceConn); the close that follows is then for a session already
// offline and publishes nothing.
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
		in.Raw = data // read during the call only: a cluster forwards the frame as sent
		c.telemetry(in, f)
	case f.Type == bridge.FrameCommandAck || f.Type == bridge.FrameCommandResult:
		c.commandAnswer(in, data)
	default:
		c.reject(in, f, bridge.Errorf("type %q: unknown frame type", f.Type))
	}
}

// telemetry submits the readings of f; the ack follows the commit. Over
// the device's rate it first waits, which also delays reading the next
// frame: the device is slowed down, none of its readings refused.
func (c *wsConn) telemetry(in bridge.Input, f bridge.Frame) {
	if !c.pace(in.Device) {
		return
	}
	in.Paced = true
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

// pace waits, on the read goroutine, until the device's rate limit lets
// its next message in. It returns false when the connection died or the
// endpoint shut down during the wait.
func (c *wsConn) pace(device string) bool {
	d := c.ws.cfg.Bridge.Pace(device, time.Now())
	if d <= 0 {
		return true
	}
	stopped, alive := c.stopSignal()
	if !alive {
		return false
	}
	return pause(&c.pacer, d, stopped, c.ws.stop)
}

// stopSignal returns the channel closed when c dies, made on the first
// call, and false when c is dead already.
func (c *wsConn) stopSignal() (<-chan struct{}, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return nil, false
	}
	if c.stopped == nil {
		c.stopped = make(chan struct{})
	}
	return c.stopped, true
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
		b = wsframe.AppendFrame(b, wsframe.OpPing, "")
	}
	if c.hasPong {
		c.hasPong = false
		b = wsframe.AppendFrame(b, wsframe.OpPong, c.pong)
	}
	b = c.encodeCommands(b)
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
		c.writing = false
		c.die()
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

// kill marks c dead and wakes a read goroutine waiting for space or for
// its rate.
func (c *wsConn) kill() {
	c.mu.Lock()
	c.die()
	c.mu.Unlock()
}

// isDead reports whether c is closing or closed.
func (c *wsConn) isDead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dead
}

// die marks c dead and wakes its read goroutine. c.mu must be held.
func (c *wsConn) die() {
	if !c.dead && c.stopped != nil {
		close(c.stopped) // ends a wait of pace; nil when pace never waited
	}
	c.dead = true
	c.signal()
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
