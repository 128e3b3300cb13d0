package devices

import (
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/prometheus/client_golang/prometheus"
)

// mqttListener is the broker's TCP (or TLS) listener. Unlike mochi's own,
// it bounds the wait for a new connection's CONNECT packet, and on Close
// closes every connection it accepted and waits for their goroutines.
type mqttListener struct {
	id             string
	addr           string
	tls            *tls.Config
	connectTimeout time.Duration
	// maxPacket, when set, is the largest packet a client may send
	// (mqttLimitedConn).
	maxPacket int
	// perAddr, when set, is how many connections one source address may
	// hold; more are refused (refuse) and counted in refused.
	perAddr   int
	refused   prometheus.Counter
	refuseLog *mqttLogLimiter
	log       *slog.Logger
	ln        net.Listener
	done      chan struct{}
	// serve runs an admitted connection's session (mqttSessions.serve),
	// in place of the establish function mochi passes to Serve; it calls
	// release once the connection is done with, possibly after returning.
	serve func(listener string, conn net.Conn, maxPacket int, release func())
	// disconnect, when set, disconnects the listener's clients on Close
	// in place of the function mochi passes (disconnectListenerClients).
	disconnect func(listener string)

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	byAddr map[string]int // admitted connections by source host
	wg     sync.WaitGroup // Serve and one goroutine per connection
}

func newMQTTListener(addr string, tlsConf *tls.Config, connectTimeout time.Duration, log *slog.Logger) *mqttListener {
	return &mqttListener{
		id: "telehub", addr: addr, tls: tlsConf, connectTimeout: connectTimeout, log: log,
		done: make(chan struct{}), conns: make(map[net.Conn]struct{}), byAddr: make(map[string]int),
		refuseLog: &mqttLogLimiter{now: time.Now, kinds: make(map[string]*mqttLogKind)},
	}
}

// ID returns the listener's id.
func (l *mqttListener) ID() string { return l.id }

// Address returns the bound address.
func (l *mqttListener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.addr
}

// Protocol returns "tcp" or "tls".
func (l *mqttListener) Protocol() string {
	if l.tls != nil {
		return "tls"
	}
	return "tcp"
}

// Init binds the address.
func (l *mqttListener) Init(*slog.Logger) error {
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return err
	}
	if l.tls != nil {
		ln = tls.NewListener(ln, l.tls)
	}
	l.ln = ln
	return nil
}

// Serve accepts connections until Close, handing each admitted one to
// serve on a goroutine of its own; mochi's establish function is not used.
func (l *mqttListener) Serve(listeners.EstablishFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.wg.Add(1)
	l.mu.Unlock()
	defer l.wg.Done()
	var delay time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if delay = acceptBackoff(delay); !l.pause(err, delay) {
				return
			}
			continue
		}
		delay = 0
		admitted, ok := l.track(conn)
		if !ok {
			_ = conn.Close()
			return
		}
		go l.serveConn(conn, admitted)
	}
}

// acceptBackoff returns the wait after a failed Accept: 5ms doubling to 1s.
func acceptBackoff(prev time.Duration) time.Duration {
	if prev == 0 {
		return 5 * time.Millisecond
	}
	return min(2*prev, time.Second)
}

// pause waits after an Accept error; false when the listener is closed.
func (l *mqttListener) pause(err error, delay time.Duration) bool {
	select {
	case <-l.done:
		return false
	default:
	}
	l.log.Warn("mqtt accept failed", "error", err, "retry_in", delay)
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-l.done:
		return false
	case <-t.C:
		return true
	}
}

// track registers an accepted connection and reports whether its source
// address had a slot left (admitted); ok is false when the listener closed.
func (l *mqttListener) track(conn net.Conn) (admitted, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false, false
	}
	l.conns[conn] = struct{}{}
	l.wg.Add(1)
	return l.admitLocked(sourceHost(conn)), true
}

// untrack forgets conn and frees its address's slot when it held one.
func (l *mqttListener) untrack(conn net.Conn, admitted bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, conn)
	if admitted {
		l.releaseLocked(sourceHost(conn))
	}
}

func (l *mqttListener) serveConn(conn net.Conn, admitted bool) {
	release := func() {
		l.untrack(conn, admitted)
		l.wg.Done()
	}
	if !admitted {
		defer release()
		defer func() { _ = conn.Close() }()
		l.refuse(conn, sourceHost(conn))
		return
	}
	// The session replaces this deadline with the client's keepalive once
	// the CONNECT packet is read.
	_ = conn.SetReadDeadline(time.Now().Add(l.connectTimeout))
	l.serve(l.id, conn, l.maxPacket, release)
}

// Close stops accepting, lets mochi disconnect its clients, closes every
// connection still open (those that never sent CONNECT included) and
// waits for all of the listener's goroutines.
func (l *mqttListener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	close(l.done)
	conns := make([]net.Conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()

	deadline := time.Now().Add(time.Second)
	for _, c := range conns {
		_ = c.SetWriteDeadline(deadline) // a stuck peer cannot hold up the DISCONNECT
	}
	if l.disconnect != nil {
		closeClients = l.disconnect
	}
	closeClients(l.id)
	_ = l.ln.Close()
	for _, c := range conns {
		_ = c.Close()
	}
	l.wg.Wait()
}
