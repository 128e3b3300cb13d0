//go:build unix

package devices

import (
	"errors"
	"io"
	"sync"
	"syscall"
)

// rawReader is what the direct readers of WebSocket devices
// (ws_direct.go) and MQTT clients (mqtt_direct.go) share: the raw reads
// of a plain TCP socket, a waiter's that parks until the peer sends and a
// round's that never waits, and the pooled buffer that holds bytes of a
// frame or packet that arrived only in part. An idle connection holds no
// buffer.
type rawReader struct {
	raw syscall.RawConn
	buf *[]byte // unparsed bytes; nil when none

	// The state of the raw read, in fields so that io, made once, does
	// not allocate per read.
	io      func(fd uintptr) bool
	dst     []byte
	n       int
	err     error
	waiting bool // the waiter's read: EAGAIN waits for the socket
}

// directReadBufferSize is the size of the pooled buffers a connection
// reads into while it has something to read.
const directReadBufferSize = 4096

// directReadBuffers are those buffers (*[]byte).
var directReadBuffers sync.Pool

func (r *rawReader) init(raw syscall.RawConn) {
	r.raw = raw
	r.io = r.read
}

// waitRead parks until the peer sends, or the connection fails, and reads
// at most len(p) bytes: r.n and r.err tell what came. Its stack stays
// small: it calls nothing but the raw read.
func (r *rawReader) waitRead(p []byte) {
	r.dst, r.waiting, r.n, r.err = p, true, 0, nil
	if err := r.raw.Read(r.io); err != nil {
		r.n, r.err = 0, err
	}
	r.dst = nil
}

// read is the raw read: one read(2) into r.dst. The waiter's read reports
// false on EAGAIN, which parks it until the socket is readable.
func (r *rawReader) read(fd uintptr) bool {
	r.n, r.err = readOnce(int(fd), r.dst)
	return !r.waiting || r.err != syscall.EAGAIN // read(2)'s Errno, unwrapped
}

// readOnce reads from the non-blocking descriptor fd into p; EAGAIN when
// nothing is there, io.EOF when the peer closed.
func readOnce(fd int, p []byte) (int, error) {
	for {
		n, err := syscall.Read(fd, p)
		switch {
		case err == syscall.EINTR: // compared, not errors.Is: the waiter's stack stays shallow
			continue
		case err != nil:
			return 0, err
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// readNow reads what the socket holds into p without waiting: EAGAIN
// when it holds nothing. It fails like a read of the connection when the
// read deadline passed or the socket was closed.
func (r *rawReader) readNow(p []byte) (int, error) {
	r.dst, r.waiting, r.n, r.err = p, false, 0, nil
	err := r.raw.Read(r.io)
	r.dst = nil
	if err != nil {
		return 0, err
	}
	return r.n, r.err
}

// readRound handles first, what the waiter read, and everything the
// socket holds after it: handle takes the whole frames or packets at the
// start of its bytes and returns how many bytes they took and, when the
// next one's header is there, its size. It returns the start of the next
// frame or packet, once the socket has nothing more, or the error that
// ends the connection (its buffer released).
func (r *rawReader) readRound(first []byte, handle func([]byte) (used, need int, err error)) ([]byte, error) {
	b := append(r.take(), first...)
	// A read that did not fill its buffer most likely emptied the socket:
	// the next waiter's read finds out, saving a read that would find
	// nothing.
	drained := len(first) < cap(first)
	for {
		used, need, err := handle(b)
		if err != nil {
			r.release(b)
			return nil, err
		}
		b = b[:copy(b, b[used:])] // the start of the next one, if any
		if need > cap(b) || len(b) == cap(b) {
			b = append(make([]byte, 0, max(need, directReadBufferSize)), b...)
		}
		if drained {
			return b, nil
		}
		n, err := r.readNow(b[len(b):cap(b)])
		switch {
		case errors.Is(err, syscall.EAGAIN):
			return b, nil
		case err != nil:
			r.release(b)
			return nil, err
		}
		drained = n < cap(b)-len(b)
		b = b[:len(b)+n]
	}
}

// take returns the buffer to read into, holding the unparsed bytes of the
// last round.
func (r *rawReader) take() []byte {
	if r.buf == nil {
		if b, ok := directReadBuffers.Get().(*[]byte); ok {
			r.buf = b
		} else {
			b := make([]byte, 0, directReadBufferSize)
			r.buf = &b
		}
	}
	return *r.buf
}

// keep keeps b while it holds the start of a frame or packet; else its
// buffer goes back to the pool.
func (r *rawReader) keep(b []byte) {
	if len(b) > 0 {
		*r.buf = b
		return
	}
	r.release(b)
}

// release returns the connection's buffer to the pool.
func (r *rawReader) release(b []byte) {
	if r.buf == nil {
		return
	}
	if cap(b) == directReadBufferSize {
		*r.buf = b[:0]
		directReadBuffers.Put(r.buf)
	}
	r.buf = nil
}
