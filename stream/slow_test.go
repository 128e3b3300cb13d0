package stream

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// smallBuffers makes the server side of every connection keep at most a
// few KiB in its socket send buffer, so that a client that stops reading
// blocks the hub's writes after a few events rather than megabytes.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(8 << 10)
	}
	return c, err
}

// stalledClient opens a watcher over a raw TCP connection with a small
// receive buffer, then never reads again.
func stalledClient(t *testing.T, th *testHub, transport string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", th.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	if transport == transportSSE {
		fmt.Fprintf(conn, "GET /v1/stream HTTP/1.1\r\nHost: %s\r\n\r\n", th.srv.Listener.Addr())
		readUntil(t, conn, "retry: 2000\n\n")
		return conn
	}
	fmt.Fprintf(conn, "GET /v1/stream/ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", th.srv.Listener.Addr())
	readUntil(t, conn, "\r\n\r\n")
	if _, err := conn.Write(maskedText(`{"op":"subscribe","topics":["#"]}`)); err != nil {
		t.Fatal(err)
	}
	return conn
}

// maskedText is a client text frame with a zero mask key.
func maskedText(payload string) []byte {
	return append([]byte{0x81, 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...)
}

// readUntil reads conn byte by byte until it has seen marker.
func readUntil(t *testing.T, conn net.Conn, marker string) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(guard))
	defer func() { _ = conn.SetReadDeadline(time.Time{}) }()
	var seen []byte
	b := make([]byte, 1)
	for !bytes.HasSuffix(seen, []byte(marker)) {
		if _, err := conn.Read(b); err != nil {
			t.Fatalf("reading up to %q: %v (got %q)", marker, err, seen)
		}
		seen = append(seen, b[0])
	}
}

// reader counts the events a test watcher receives and checks that each
// one has the next id.
type reader struct {
	n   atomic.Int64
	bad atomic.Value // string: what went wrong
}

func (r *reader) got(th *testHub, id string) {
	if want := th.log.ids.Format(uint64(r.n.Load()) + 1); id != want {
		r.bad.CompareAndSwap(nil, fmt.Sprintf("got id %s, want %s", id, want))
	}
	r.n.Add(1)
}

// startReaders opens n watchers of transport on "#" that read everything;
// they stop at cleanup (and stop is called then).
func startReaders(t *testing.T, th *testHub, transport string, n int) []*reader {
	t.Helper()
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	out := make([]*reader, n)
	for i := range out {
		r := new(reader)
		out[i] = r
		wg.Add(1)
		if transport == transportSSE {
			s := openSSE(t, th, "", nil)
			go func() {
				defer wg.Done()
				for {
					ev, err := s.next()
					if err != nil {
						return
					}
					if ev.comment == "" {
						r.got(th, ev.id)
					}
				}
			}()
			continue
		}
		c := dialWS(t, th, nil)
		c.subscribe("", "#")
		go func() {
			defer wg.Done()
			for {
				select {
				case m := <-c.msgs:
					r.got(th, m.ID)
				case <-c.done:
					return
				}
			}
		}()
	}
	return out
}

// waitAll waits until every reader has n events, and checks them.
func waitAll(t *testing.T, rs []*reader, n int64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d events at every reader", n), func() bool {
		for _, r := range rs {
			if r.n.Load() < n {
				return false
			}
		}
		return true
	})
	for i, r := range rs {
		if bad := r.bad.Load(); bad != nil {
			t.Fatalf("reader %d: %s", i, bad)
		}
	}
}

func TestSlowWatcherDisconnected(t *testing.T) {
	for _, transport := range []string{transportSSE, transportWS} {
		t.Run(transport, func(t *testing.T) {
			// Only the backlog rule may disconnect: no write timeout or
			// silent-peer timeout within the test.
			cfg := Config{QueueLimit: 64, WriteTimeout: time.Hour, Heartbeat: time.Hour}
			th := newTestHubListener(t, cfg, func(l net.Listener) net.Listener { return smallBuffers{l} })
			pad := strings.Repeat("x", 1000)
			slow := stalledClient(t, th, transport)
			readers := startReaders(t, th, transport, 100)
			waitFor(t, "watchers", func() bool { return th.Watchers() == 101 })
			slowCount := func() float64 { return testutil.ToFloat64(th.m.SlowWatchers.WithLabelValues(transport)) }

			// Lockstep: every reader has every event before the next
			// commit, so only the stalled watcher falls behind.
			var total int64
			for batch := 0; slowCount() == 0; batch++ {
				if batch == 200 {
					t.Fatal("the stalled watcher was never disconnected")
				}
				topics := repeat("telemetry/d1/"+pad, 16)
				commit(th.Hub, th.log, topics...)
				total += int64(len(topics))
				waitAll(t, readers, total)
			}
			waitFor(t, "slow watcher gone", func() bool { return th.Watchers() == 100 })
			commit(th.Hub, th.log, repeat("telemetry/d1/temp", 16)...)
			waitAll(t, readers, total+16)
			if n := slowCount(); n != 1 {
				t.Errorf("slow watcher disconnects = %v, want 1", n)
			}
			// The hub closed the stalled connection: reading it ends.
			_ = slow.SetReadDeadline(time.Now().Add(guard))
			if _, err := io.Copy(io.Discard, slow); err != nil {
				t.Errorf("stalled connection not closed by the hub: %v", err)
			}
		})
	}
}

func TestBigCommitDoesNotDisconnect(t *testing.T) {
	for _, transport := range []string{transportSSE, transportWS} {
		t.Run(transport, func(t *testing.T) {
			th := newTestHub(t, Config{QueueLimit: 16})
			readers := startReaders(t, th, transport, 2)
			waitFor(t, "watchers", func() bool { return th.Watchers() == 2 })
			commit(th.Hub, th.log, repeat("telemetry/d1/temp", 3000)...) // 187 × QueueLimit
			waitAll(t, readers, 3000)
			commit(th.Hub, th.log, "telemetry/d1/temp")
			waitAll(t, readers, 3001)
			if n := testutil.ToFloat64(th.m.SlowWatchers.WithLabelValues(transport)); n != 0 {
				t.Errorf("slow watcher disconnects = %v, want 0", n)
			}
			// A write is counted once it returned, a moment after the reader has it.
			waitFor(t, fmt.Sprintf("%d events counted as delivered", 2*3001), func() bool {
				return testutil.ToFloat64(th.m.EventsDelivered.WithLabelValues(transport)) == 2*3001
			})
		})
	}
}

func TestWriteTimeoutIsSlow(t *testing.T) {
	for _, transport := range []string{transportSSE, transportWS} {
		t.Run(transport, func(t *testing.T) {
			cfg := Config{QueueLimit: 1 << 20, WriteTimeout: 100 * time.Millisecond, Heartbeat: time.Hour}
			th := newTestHubListener(t, cfg, func(l net.Listener) net.Listener { return smallBuffers{l} })
			stalledClient(t, th, transport)
			waitFor(t, "watcher", func() bool { return th.Watchers() == 1 })
			if transport == transportWS { // the subscription is in force once an event arrives
				waitFor(t, "subscription", func() bool {
					commit(th.Hub, th.log, "telemetry/d1/temp")
					return testutil.ToFloat64(th.m.EventsDelivered.WithLabelValues(transport)) > 0
				})
			}
			pad := strings.Repeat("x", 1000)
			for range 20 { // far more than the socket buffers hold, in one write
				commit(th.Hub, th.log, repeat("telemetry/d1/"+pad, 16)...)
			}
			waitFor(t, "slow disconnect", func() bool {
				return testutil.ToFloat64(th.m.SlowWatchers.WithLabelValues(transport)) == 1
			})
			waitFor(t, "watcher gone", func() bool { return th.Watchers() == 0 })
		})
	}
}
