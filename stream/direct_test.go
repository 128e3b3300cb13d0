package stream

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeTry is the non-blocking side of a memSink: it takes at most room
// bytes a call into the same buffer as the writer goroutine's writes, so
// that the sink's content is the stream in the order it was written.
type fakeTry struct {
	s     *memSink
	room  int
	fail  error
	calls atomic.Int32
}

func (f *fakeTry) tryWrite(b []byte) (int, error) {
	f.calls.Add(1)
	if f.fail != nil {
		return 0, f.fail
	}
	n := min(len(b), f.room)
	f.s.mu.Lock()
	f.s.buf.Write(b[:n])
	f.s.mu.Unlock()
	return n, nil
}

// directSink returns a memSink whose non-blocking writes take room bytes.
func directSink(room int) (*memSink, *fakeTry) {
	s := new(memSink)
	tw := &fakeTry{s: s, room: room}
	s.tw = tw
	return s, tw
}

// A commit reaches a watcher whose connection takes it at once without its
// writer goroutine writing anything, and is counted as delivered.
func TestDirectWriteSparesTheWriter(t *testing.T) {
	l := newFakeLog("hubA")
	m := newMemHub(t, Config{Log: l})
	s, tw := directSink(1 << 20)
	w := startMemSink(t, m, formatSSE, s, "#")
	_, plain := startMem(t, m, formatSSE, "#")
	waitFor(t, "direct writes enabled", func() bool { return directOf(w) != nil })
	for range 5 {
		commit(m, l, "a", "b")
	}
	waitFor(t, "10 events", func() bool { return strings.Count(s.String(), "id: ") == 10 })
	waitFor(t, "10 events, plain", func() bool { return strings.Count(plain.String(), "id: ") == 10 })
	if s.String() != plain.String() {
		t.Errorf("direct stream %q\nwriter's stream %q", s.String(), plain.String())
	}
	if n := s.writeCount(); n != 0 {
		t.Errorf("the writer goroutine wrote %d times", n)
	}
	if tw.calls.Load() == 0 {
		t.Error("no non-blocking write")
	}
	// A write is counted once it returned, a moment after its bytes are in.
	waitFor(t, "20 deliveries counted (10 to each watcher)", func() bool {
		return testutil.ToFloat64(m.stats[formatSSE].delivered) == 20
	})
}

// directOf returns w's direct connection, read under its lock.
func directOf(w *watcher) *directConn {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	return w.direct
}

// What a non-blocking write leaves goes out before any later frame, from
// the writer goroutine: the stream is byte for byte the one a watcher
// without direct writes gets, however little each try takes.
func TestDirectWriteRestGoesFirst(t *testing.T) {
	for _, room := range []int{0, 1, 7, 100} {
		t.Run(fmt.Sprintf("room=%d", room), func(t *testing.T) {
			l := newFakeLog("hubA")
			m := newMemHub(t, Config{Log: l})
			s, tw := directSink(room)
			w := startMemSink(t, m, formatWS, s, "#")
			_, plain := startMem(t, m, formatWS, "#")
			waitFor(t, "direct writes enabled", func() bool { return directOf(w) != nil })
			for i := range 50 {
				commit(m, l, repeat(fmt.Sprintf("t/%d", i), i%3+1)...)
			}
			want := 0
			for i := range 50 {
				want += i%3 + 1
			}
			waitFor(t, "every event", func() bool { return strings.Count(s.String(), `"id":`) == want })
			waitFor(t, "every event, plain", func() bool { return strings.Count(plain.String(), `"id":`) == want })
			if s.String() != plain.String() {
				t.Errorf("direct stream differs from the writer's:\n%q\n%q", s.String(), plain.String())
			}
			if tw.calls.Load() == 0 {
				t.Error("no non-blocking write")
			}
			// A write is counted once it returned, a moment after its bytes are in.
			waitFor(t, fmt.Sprintf("%d deliveries counted", 2*want), func() bool {
				return testutil.ToFloat64(m.stats[formatWS].delivered) == float64(2*want)
			})
		})
	}
}

// A failed non-blocking write ends the watcher's stream with its error.
func TestDirectWriteFailureEndsStream(t *testing.T) {
	l := newFakeLog("hubA")
	m := newMemHub(t, Config{Log: l})
	s, tw := directSink(1 << 20)
	boom := errors.New("boom")
	tw.fail = boom
	w := newWatcher(formatSSE, func() {})
	fs, _ := parseFilters([]string{"#"}, 10)
	if err := m.register(w, fs, "", false, 1); err != nil {
		t.Fatal(err)
	}
	type result struct {
		e   end
		err error
	}
	res := make(chan result, 1)
	w.setDirect(s.direct())
	go func() {
		defer m.wg.Done()
		defer m.unregister(w)
		e, err := m.serve(w, s, nil)
		res <- result{e, err}
	}()
	waitFor(t, "direct writes enabled", func() bool { return directOf(w) != nil })
	commit(m, l, "a")
	select {
	case r := <-res:
		if r.e != endError || !errors.Is(r.err, boom) {
			t.Errorf("stream ended with %v, %v; want endError, boom", r.e, r.err)
		}
	case <-time.After(guard):
		t.Fatal("stream did not end")
	}
	if n := s.writeCount(); n != 0 {
		t.Errorf("%d writes after the failure", n)
	}
}

// An aborted watcher gets no non-blocking write.
func TestDirectWriteNotAfterAbort(t *testing.T) {
	l := newFakeLog("hubA")
	m := newMemHub(t, Config{Log: l})
	s, tw := directSink(1 << 20)
	w := startMemSink(t, m, formatSSE, s, "#")
	waitFor(t, "direct writes enabled", func() bool { return directOf(w) != nil })
	w.abort()
	commit(m, l, "a")
	waitFor(t, "the stream ended", func() bool { return directOf(w) == nil })
	if n := tw.calls.Load(); n != 0 {
		t.Errorf("%d non-blocking writes after abort", n)
	}
	if s.String() != "" {
		t.Errorf("wrote %q after abort", s.String())
	}
}

// Over real sockets whose buffers fill up (the clients read only after
// 1 000 events), non-blocking writes stop in the
// middle of frames and the writer goroutines finish them, while WebSocket
// pings keep arriving: every event reaches each watcher once and in order,
// and both wires stay well formed (the SSE chunks and the WebSocket
// frames, pongs included, parse).
func TestDirectWritesKeepWireIntact(t *testing.T) {
	th := newTestHubListener(t, Config{WriteTimeout: guard}, func(l net.Listener) net.Listener { return smallBuffers{l} })
	sse := rawSSE(t, th)
	ws := rawWS(t, th)
	waitFor(t, "watchers", func() bool { return th.Watchers() == 2 })
	waitFor(t, "subscription", func() bool {
		th.Hub.mu.Lock()
		defer th.Hub.mu.Unlock()
		return len(th.Hub.index.match("x", nil)) == 2
	})
	// ~300-byte frames: 1 000 of them overflow the hub's send buffer and
	// the client's receive buffer (it does not read yet) many times over.
	const half = 1000
	topic := "t/" + strings.Repeat("x", 200)
	for range half / 4 {
		commit(th.Hub, th.log, repeat(topic, 4)...)
	}
	stopPings := ws.pingEvery(t)
	var wg sync.WaitGroup
	wg.Add(2)
	var sseN, wsN int
	var sseErr, wsErr error
	go func() { defer wg.Done(); sseN, sseErr = sse.read(th, 2*half) }()
	go func() { defer wg.Done(); wsN, wsErr = ws.read(th, 2*half) }()
	for range half / 4 {
		commit(th.Hub, th.log, repeat(topic, 4)...)
	}
	wg.Wait()
	stopPings()
	if sseErr != nil || sseN != 2*half {
		t.Errorf("sse: %d events, %v", sseN, sseErr)
	}
	if wsErr != nil || wsN != 2*half {
		t.Errorf("ws: %d events, %v", wsN, wsErr)
	}
	if ws.pongs.Load() == 0 {
		t.Error("no pong came back")
	}
}

// rawSSEClient reads an SSE stream off a raw connection, parsing the
// chunked body itself.
type rawSSEClient struct {
	conn net.Conn
	body *bufio.Reader
}

func rawSSE(t *testing.T, th *testHub) *rawSSEClient {
	t.Helper()
	conn := dialHub(t, th)
	fmt.Fprintf(conn, "GET /v1/stream?topic=%%23 HTTP/1.1\r\nHost: hub\r\n\r\n")
	r := bufio.NewReader(conn)
	readHead(t, r)
	c := &rawSSEClient{conn: conn, body: bufio.NewReader(httputil.NewChunkedReader(r))}
	if line, err := c.body.ReadString('\n'); err != nil || line != "retry: 2000\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	return c
}

// read reads n events and checks that their ids follow each other.
func (c *rawSSEClient) read(th *testHub, n int) (int, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(guard))
	got := 0
	for got < n {
		line, err := c.body.ReadString('\n')
		if err != nil {
			return got, err
		}
		id, ok := strings.CutPrefix(line, "id: ")
		if !ok {
			continue
		}
		if want := th.log.ids.Format(uint64(got) + 1); strings.TrimSpace(id) != want {
			return got, fmt.Errorf("id %q, want %s", id, want)
		}
		got++
	}
	return got, nil
}

// rawWSClient reads WebSocket frames off a raw connection and checks each
// one.
type rawWSClient struct {
	conn  net.Conn
	r     *bufio.Reader
	mu    sync.Mutex // serializes writes (subscribe, pings)
	pongs atomic.Int32
}

func rawWS(t *testing.T, th *testHub) *rawWSClient {
	t.Helper()
	conn := dialHub(t, th)
	fmt.Fprintf(conn, "GET /v1/stream/ws HTTP/1.1\r\nHost: hub\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	r := bufio.NewReader(conn)
	if head := readHead(t, r); !strings.HasPrefix(head, "HTTP/1.1 101") {
		t.Fatalf("upgrade: %q", head)
	}
	c := &rawWSClient{conn: conn, r: r}
	c.write(t, maskedText(`{"op":"subscribe","topics":["#"]}`))
	return c
}

func (c *rawWSClient) write(t *testing.T, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.conn.Write(b); err != nil {
		t.Errorf("ws client write: %v", err)
	}
}

// pingEvery sends a ping each millisecond until the returned stop is
// called.
func (c *rawWSClient) pingEvery(t *testing.T) (stop func()) {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				c.write(t, []byte{0x89, 0x82, 0, 0, 0, 0, 'h', 'i'}) // masked ping "hi", zero key
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// read reads frames until n events and a pong came, checking every frame:
// text frames carry a subscribed answer or the next event, pongs echo "hi".
func (c *rawWSClient) read(th *testHub, n int) (int, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(guard))
	got := 0
	for got < n || c.pongs.Load() == 0 {
		op, payload, err := readServerFrame(c.r)
		if err != nil {
			return got, err
		}
		switch op {
		case 0xA:
			if string(payload) != "hi" {
				return got, fmt.Errorf("pong %q", payload)
			}
			c.pongs.Add(1)
		case 0x1:
			var m wsMsg
			if err := json.Unmarshal(payload, &m); err != nil {
				return got, fmt.Errorf("text frame %q: %w", payload, err)
			}
			if m.Op == "subscribed" {
				continue
			}
			if want := th.log.ids.Format(uint64(got) + 1); m.ID != want {
				return got, fmt.Errorf("id %q, want %s", m.ID, want)
			}
			got++
		default:
			return got, fmt.Errorf("frame opcode %#x", op)
		}
	}
	return got, nil
}

// readServerFrame reads one final, unmasked frame.
func readServerFrame(r *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0]&0xF0 != 0x80 || h[1]&0x80 != 0 {
		return 0, nil, fmt.Errorf("frame header % x", h)
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("frame of %d bytes", n)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(r, payload)
	return h[0] & 0x0F, payload, err
}

// dialHub connects to th.
func dialHub(t *testing.T, th *testHub) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", th.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// A stream that ends while a non-blocking write left part of a frame
// first completes that frame, so that the last frame its caller writes
// (the end of the SSE body, a WebSocket close) starts where a frame ends.
func TestFinishCompletesWhatTheFanoutLeft(t *testing.T) {
	l := newFakeLog("hubA")
	m := newMemHub(t, Config{Log: l})
	s, tw := directSink(5)
	w, _ := startMemNoWriter(t, m, formatWS, "#")
	w.setDirect(s.direct())
	rec := commit(m, l, "a")[0] // the fan-out writes 5 bytes of it
	waitFor(t, "a non-blocking write", func() bool { return tw.calls.Load() > 0 })
	<-w.wake // what it left is for the writer goroutine, which is not running
	gone := make(chan struct{})
	close(gone)
	e, err := m.serve(w, s, gone)
	if e != endGone || err != nil {
		t.Fatalf("serve: %v, %v", e, err)
	}
	if want := string(formatWS.appendEvent(nil, l.ids, &rec)); s.String() != want {
		t.Errorf("wrote %q, want the whole frame %q", s.String(), want)
	}
	if directOf(w) != nil {
		t.Error("non-blocking writes still allowed after the stream ended")
	}
}

// A frame whose 64-bit length has its top bit set, which gws reads as a
// negative length and panics on, closes that watcher with 1009; the hub
// goes on serving.
func TestWSFrameOfNegativeLength(t *testing.T) {
	th := newTestHub(t, Config{})
	c := rawWS(t, th)
	frame := binary.BigEndian.AppendUint64([]byte{0x81, 0xFF}, 1<<63)
	c.write(t, append(frame, 0, 0, 0, 0)) // the mask key; no payload follows
	_ = c.conn.SetReadDeadline(time.Now().Add(guard))
	for {
		op, payload, err := readServerFrame(c.r)
		if err != nil {
			t.Fatalf("no close frame: %v", err)
		}
		if op == 0x8 {
			if len(payload) < 2 || binary.BigEndian.Uint16(payload) != 1009 {
				t.Fatalf("close frame % x, want code 1009", payload)
			}
			break
		}
	}
	other := dialWS(t, th, nil)
	other.subscribe("", "telemetry/#")
	rec := commit(th.Hub, th.log, "telemetry/d1/temp")[0]
	wantEvent(t, th.log.ids, other.next(), rec)
}
