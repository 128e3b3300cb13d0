package devices

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"os"
	"time"
)

// closeSilent is the close code of a connection the hub ends because
// nothing came from the device for its timeout (plus readGrace).
//
// It is 1001, going away: the code WebSocket servers commonly send for an
// idle timeout, and one that tells the device to connect again. 1000
// would call the end normal, 1008 would blame a policy violation, 1011 an
// error of the hub. The reason "timeout" tells it apart from the
// shutdown's 1001 "shutdown".
const closeSilent = closeGoingAway

// silenceWatch is the http.ResponseWriter handed to gws's upgrade: the
// connection it hijacks is wrapped in a *silenceConn, so that a silent
// device is closed by the hub with closeSilent "timeout" instead of by
// gws, which sends 1000 with the read error as the reason ("read tcp
// 127.0.0.1:8080->…: i/o timeout", addresses included).
type silenceWatch struct {
	http.ResponseWriter
	conn *silenceConn // set by Hijack
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *silenceWatch) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack hijacks the connection and wraps it.
func (w *silenceWatch) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = &silenceConn{Conn: conn}
	if n := rw.Reader.Buffered(); n > 0 { // sent by the device right after its request
		p, _ := rw.Reader.Peek(n)
		w.conn.pending = bytes.Clone(p)
	}
	return w.conn, rw, nil
}

// silenceConn is a device connection's socket as gws reads it. Its read
// deadline passing means the device was silent past its timeout: Read
// then closes the connection with closeSilent before gws sees the error,
// and gws, finding the connection closed, sends no close frame of its own.
type silenceConn struct {
	net.Conn
	owner *wsConn // set before the read loop starts
	// pending are bytes net/http read past the upgrade request: Read
	// returns them first.
	pending []byte
}

// takePending returns the bytes read past the upgrade request, which Read
// then no longer returns.
func (c *silenceConn) takePending() []byte {
	p := c.pending
	c.pending = nil
	return p
}

// Unwrap returns the connection itself.
func (c *silenceConn) Unwrap() net.Conn { return c.Conn }

// Read reads from the connection; see silenceConn.
func (c *silenceConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		if c.pending = c.pending[n:]; len(c.pending) == 0 {
			c.pending = nil
		}
		return n, nil
	}
	n, err := c.Conn.Read(p)
	if err != nil && c.owner != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.owner.close(closeSilent, "timeout", time.Now().Add(wsCloseTimeout))
	}
	return n, err
}
