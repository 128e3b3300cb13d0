package main

import (
	"net"
	"sync"

	mqttsrv "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// closingListener is a net.Listener for a test broker whose Close also
// closes every connection it accepted. mochi's Server.Close waits for
// every connection's goroutine, and one whose peer never sends CONNECT
// (or stops reading) is never closed by mochi's own listener: its Close
// would wait for ever. mochi closes the listener before that wait.
type closingListener struct {
	net.Listener

	mu     sync.Mutex
	closed bool
	conns  map[*closingConn]struct{}
}

func newClosingListener(ln net.Listener) *closingListener {
	return &closingListener{Listener: ln, conns: make(map[*closingConn]struct{})}
}

// Accept tracks the connection until it is closed; after Close it refuses.
func (l *closingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		_ = conn.Close()
		return nil, net.ErrClosed
	}
	c := &closingConn{Conn: conn, l: l}
	l.conns[c] = struct{}{}
	return c, nil
}

// Close closes the listener and every connection still open.
func (l *closingListener) Close() error {
	l.mu.Lock()
	l.closed = true
	open := make([]*closingConn, 0, len(l.conns))
	for c := range l.conns {
		open = append(open, c)
	}
	l.mu.Unlock()
	err := l.Listener.Close()
	for _, c := range open {
		_ = c.Close()
	}
	return err
}

// open returns how many accepted connections are still open.
func (l *closingListener) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// closingConn is an accepted connection that leaves its listener's set
// when closed.
type closingConn struct {
	net.Conn
	l *closingListener
}

func (c *closingConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// safeCloseNet is mochi's TCP listener with a close that disconnects its
// clients without mochi's Clients.GetByListener, which takes the clients'
// read lock twice: a client removed in between (one of firmware-sim's
// connections ending as its process exits) deadlocks the broker's Close.
type safeCloseNet struct {
	*listeners.Net
	server *mqttsrv.Server
}

func (l *safeCloseNet) Close(listeners.CloseFn) {
	l.Net.Close(func(id string) {
		for _, cl := range l.server.Clients.GetAll() {
			if cl.Net.Listener == id && !cl.Closed() {
				_ = l.server.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
	})
}
