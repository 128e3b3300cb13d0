//go:build unix

package stream

import (
	"errors"
	"net"
	"syscall"
)

// socketWriter writes to a TCP socket without waiting: the runtime keeps
// its sockets non-blocking, so a write its buffer cannot take returns
// EAGAIN at once instead of parking. It writes through Control, which
// holds the descriptor open but takes no lock and honours no deadline, so
// that a write stuck in another goroutine cannot hold it up; the watcher's
// wmu keeps the watcher's own writes apart.
type socketWriter struct{ raw syscall.RawConn }

// newSocketWriter returns a tryWriter on c, or nil when c has none.
func newSocketWriter(c *net.TCPConn) tryWriter {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	return socketWriter{raw}
}

func (s socketWriter) tryWrite(b []byte) (n int, err error) {
	cerr := s.raw.Control(func(fd uintptr) {
		for n < len(b) {
			m, e := syscall.Write(int(fd), b[n:])
			switch {
			case errors.Is(e, syscall.EINTR):
				continue
			case errors.Is(e, syscall.EAGAIN):
				return
			case e != nil:
				err = e
				return
			case m <= 0:
				return
			}
			n += m
		}
	})
	if cerr != nil {
		return n, cerr
	}
	return n, err
}
