package stream

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// gate holds the hub's next write to any accepted connection until
// release, once armed: the test decides what arrives while a write is in
// progress.
type gate struct {
	net.Listener
	mu      sync.Mutex
	armed   bool
	entered chan struct{} // closed when a write is held
	release chan struct{}
}

func newGate(l net.Listener) *gate {
	return &gate{Listener: l, entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) Accept() (net.Conn, error) {
	c, err := g.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return gatedConn{Conn: c, g: g}, nil
}

func (g *gate) arm() {
	g.mu.Lock()
	g.armed = true
	g.mu.Unlock()
}

// hold blocks the calling write if the gate is armed, once.
func (g *gate) hold() {
	g.mu.Lock()
	armed := g.armed
	g.armed = false
	g.mu.Unlock()
	if armed {
		close(g.entered)
		<-g.release
	}
}

type gatedConn struct {
	net.Conn
	g *gate
}

func (c gatedConn) Write(b []byte) (int, error) {
	c.g.hold()
	return c.Conn.Write(b)
}

// A watcher that reads everything it is sent is not slow because more than
// QueueLimit events arrived while it took one large write: it fell behind
// the hub by less than that write carried.
func TestFastReaderNotCutByArrivalsDuringWrite(t *testing.T) {
	for _, transport := range []string{transportSSE, transportWS} {
		t.Run(transport, func(t *testing.T) {
			var g *gate
			cfg := Config{QueueLimit: 16, WriteTimeout: time.Hour, Heartbeat: time.Hour}
			th := newTestHubListener(t, cfg, func(l net.Listener) net.Listener { g = newGate(l); return g })
			readers := startReaders(t, th, transport, 1)
			waitFor(t, "watcher", func() bool { return th.Watchers() == 1 })
			if transport == transportWS { // the subscription is in force once an event arrives
				commit(th.Hub, th.log, "telemetry/d1/temp")
				waitAll(t, readers, 1)
			}
			sent := readers[0].n.Load()

			g.arm()
			commit(th.Hub, th.log, repeat("telemetry/d1/temp", 60)...) // 3.75 × QueueLimit, one write
			<-g.entered
			commit(th.Hub, th.log, repeat("telemetry/d1/temp", 40)...) // arrives during that write
			close(g.release)

			waitAll(t, readers, sent+100)
			commit(th.Hub, th.log, "telemetry/d1/temp")
			waitAll(t, readers, sent+101)
			if n := testutil.ToFloat64(th.m.SlowWatchers.WithLabelValues(transport)); n != 0 {
				t.Errorf("slow watcher disconnects = %v, want 0", n)
			}
		})
	}
}

// A watcher whose backlog grows past QueueLimit while it takes a small
// write is slow: it fell further behind than the write carried.
func TestReaderFallingBehindDuringWriteIsCut(t *testing.T) {
	for _, transport := range []string{transportSSE, transportWS} {
		t.Run(transport, func(t *testing.T) {
			var g *gate
			cfg := Config{QueueLimit: 16, WriteTimeout: time.Hour, Heartbeat: time.Hour}
			th := newTestHubListener(t, cfg, func(l net.Listener) net.Listener { g = newGate(l); return g })
			readers := startReaders(t, th, transport, 1)
			waitFor(t, "watcher", func() bool { return th.Watchers() == 1 })
			if transport == transportWS {
				commit(th.Hub, th.log, "telemetry/d1/temp")
				waitAll(t, readers, 1)
			}
			g.arm()
			commit(th.Hub, th.log, repeat("telemetry/d1/temp", 2)...)
			<-g.entered
			commit(th.Hub, th.log, repeat("telemetry/d1/temp", 40)...)
			close(g.release)
			waitFor(t, "slow disconnect", func() bool {
				return testutil.ToFloat64(th.m.SlowWatchers.WithLabelValues(transport)) == 1
			})
		})
	}
}
