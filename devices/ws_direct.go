//go:build unix

package devices

import (
	"errors"
	"net"
	"os"
	"time"

	"github.com/lxzan/gws"
)

// directReader reads the frames of a device's plain TCP connection
// without a goroutine that stays parked in deep code while the device is
// idle. gws's ReadLoop parks in its frame parse, under bufio and net.Conn,
// deep enough to keep a 4 KiB stack for as long as the connection lives.
//
// Here one small goroutine, the waiter, parks in the socket's raw read
// and reads at most len(first) bytes when the device sends. It hands the
// connection's round to an idle round worker of the endpoint (or, when
// none is idle, a fresh goroutine), which handles every complete frame
// (gws's handlers, called as its ReadLoop calls them), reads on without
// waiting until the socket has nothing more and starts a new waiter. A
// frame that arrived only in part keeps its buffer until the rest comes;
// an idle connection holds none.
//
// The waiters and rounds of one connection run one after the other, each
// started by the previous one: together they hold the connection's count
// of the endpoint's WaitGroup, which the last one releases.
type directReader struct {
	rawReader // its buffer holds the start of a frame
	c         *wsConn
	msg       wsMessage
	// handle is d.frames, made once.
	handle func([]byte) (used, need int, err error)

	// first is what the waiter reads: a small frame (a heartbeat, a
	// pong, a short reading) whole, so that it needs no other read.
	first [112]byte
}

// newDirectReader returns a frameReader of conn, or nil when conn is not a
// plain TCP connection (TLS is read by gws). pending are bytes the device
// sent before its handshake was answered.
func newDirectReader(conn net.Conn, pending []byte) frameReader {
	for {
		u, ok := conn.(interface{ Unwrap() net.Conn })
		if !ok {
			break
		}
		conn = u.Unwrap()
	}
	tcp, ok := conn.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return nil
	}
	d := &directReader{}
	d.init(raw)
	d.handle = d.frames
	if len(pending) > 0 {
		d.buf = &pending
	}
	return d
}

// start runs c's open on a goroutine of its own, then reads. s.wg counts
// it already.
func (d *directReader) start(c *wsConn) {
	d.c = c
	go d.open()
}

// open handles the connection's open, as gws's ReadLoop does first, and
// the frames sent with the handshake.
func (d *directReader) open() {
	d.c.ws.open(d.c)
	d.round()
}

// wait parks until the device sends, reads the first bytes and hands the
// connection to a round.
func (d *directReader) wait() {
	d.waitRead(d.first[:])
	d.c.ws.rounds.run(d)
}

// round handles what the waiter read and every frame after it until the
// socket has nothing more, then starts a new waiter; or it ends the
// connection.
func (d *directReader) round() {
	if d.err != nil {
		if d.buf != nil {
			d.release(*d.buf)
		}
		d.end(d.err)
		return
	}
	b, err := d.readRound(d.first[:d.n], d.handle)
	d.n = 0
	if err != nil {
		d.end(err)
		return
	}
	d.park(b)
}

// park keeps b's unparsed bytes and starts a waiter, which takes over the
// connection's count of the WaitGroup.
func (d *directReader) park(b []byte) {
	d.keep(b)
	go d.wait()
}

// frames handles the complete frames at the start of b and returns the
// bytes they took and, when the next frame's header is complete, its
// length. An error ends the connection.
func (d *directReader) frames(b []byte) (used, need int, err error) {
	for {
		if d.c.isDead() {
			return used, 0, net.ErrClosed // closed by the hub: nothing more is read
		}
		f, n, need, ferr := parseFrame(b[used:], d.c.ws.cfg.MaxPayload)
		switch {
		case ferr != nil:
			return used, 0, ferr
		case n == 0:
			return used, need, nil
		}
		used += n
		if err := d.frame(f); err != nil {
			return used, 0, err
		}
	}
}

// frame handles one frame as gws's ReadLoop does.
func (d *directReader) frame(f wsFrame) error {
	e, socket := wsEvents{d.c.ws}, d.c.socket
	switch f.opcode {
	case opContinuation, opText, opBinary:
		op, data, done, err := d.msg.add(f, d.c.ws.cfg.MaxPayload)
		if err != nil {
			return err
		}
		if done {
			d.message(op, data)
		}
		return nil
	case opPing:
		defer d.c.ws.recover(nil)
		e.OnPing(socket, f.payload)
		return nil
	case opPong:
		defer d.c.ws.recover(nil)
		e.OnPong(socket, f.payload)
		return nil
	case opClose:
		return d.closeFrame(f.payload)
	}
	return controlError(f.opcode)
}

// message hands a data message to the endpoint; data is read during the
// call only.
func (d *directReader) message(op byte, data []byte) {
	defer d.c.ws.recover(nil)
	d.c.receive(gws.Opcode(op), data)
}

// closeFrame answers the device's close frame as gws does (an empty
// close with an empty one, else with the code closeAnswer gives) and
// closes the socket. It returns the device's close as the connection's
// end.
func (d *directReader) closeFrame(payload []byte) error {
	answer := closeAnswer(payload)
	ev := &gws.CloseError{}
	if len(payload) >= 2 {
		ev.Code, ev.Reason = uint16(payload[0])<<8|uint16(payload[1]), append([]byte(nil), payload[2:]...)
	}
	socket := d.c.socket
	if answer == 0 {
		_ = socket.WriteMessage(gws.OpcodeCloseConnection, nil)
		_ = socket.NetConn().Close()
	} else {
		_ = socket.WriteClose(answer, nil) // writes nothing when the hub closed first
	}
	return deviceClosed{ev}
}

// deviceClosed is the end of a connection the device closed: answered
// already.
type deviceClosed struct{ *gws.CloseError }

// end closes the connection for err, as gws's ReadLoop does for a read
// error, unless it is closed already, and tells the endpoint.
func (d *directReader) end(err error) {
	var fe *frameError
	switch {
	case errors.As(err, new(deviceClosed)):
	case errors.As(err, &fe):
		_ = d.c.socket.WriteClose(fe.code, []byte(fe.reason))
	case errors.Is(err, os.ErrDeadlineExceeded):
		d.c.close(closeSilent, "timeout", time.Now().Add(wsCloseTimeout))
	default: // the device went away, or the hub closed the socket
		_ = d.c.socket.WriteClose(closeNormal, []byte(err.Error()))
	}
	d.msg = wsMessage{}
	d.c.ws.closed(d.c, err)
	d.c.ws.wg.Done()
}
