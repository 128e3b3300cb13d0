package stream

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telehub/telehub/storage"
)

func TestNewConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr error
		check   func(Config) bool
	}{
		{"no log", Config{}, ErrInvalidConfig, nil},
		{"negative queue", Config{Log: newFakeLog("a"), QueueLimit: -1}, ErrInvalidConfig, nil},
		{"negative heartbeat", Config{Log: newFakeLog("a"), Heartbeat: -time.Second}, ErrInvalidConfig, nil},
		{"negative timeout", Config{Log: newFakeLog("a"), WriteTimeout: -1}, ErrInvalidConfig, nil},
		{"negative filters", Config{Log: newFakeLog("a"), MaxFilters: -1}, ErrInvalidConfig, nil},
		{"defaults", Config{Log: newFakeLog("a")}, nil, func(c Config) bool {
			return c.QueueLimit == 4096 && c.Heartbeat == 15*time.Second && c.WriteTimeout == 10*time.Second &&
				c.MaxFilters == 256 && c.Logger != nil
		}},
		{"kept", Config{Log: newFakeLog("a"), QueueLimit: 7, Heartbeat: time.Second, WriteTimeout: 2 * time.Second, MaxFilters: 3},
			nil, func(c Config) bool {
				return c.QueueLimit == 7 && c.Heartbeat == time.Second && c.WriteTimeout == 2*time.Second && c.MaxFilters == 3
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(tt.cfg)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("New: %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			defer func() {
				if err := h.Shutdown(context.Background()); err != nil {
					t.Error(err)
				}
			}()
			if !tt.check(h.cfg) {
				t.Errorf("config %+v", h.cfg)
			}
		})
	}
}

// memSink is an in-memory watcher connection. With tw set it also takes
// the fan-out goroutine's non-blocking writes, through tw.
type memSink struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	fail   error
	tw     tryWriter
}

func (s *memSink) write(bufs [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	for _, b := range bufs {
		s.buf.Write(b)
	}
	s.writes++
	return nil
}

func (s *memSink) writeRaw(b []byte) error { return s.write([][]byte{b}) }

func (s *memSink) direct() *directConn {
	if s.tw == nil {
		return nil
	}
	return &directConn{tryWriter: s.tw}
}

// writeCount returns how many writes the writer goroutine made.
func (s *memSink) writeCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

func (s *memSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// startMem registers an in-memory watcher with its writer goroutine.
func startMem(t *testing.T, h *Hub, f format, filters ...string) (*watcher, *memSink) {
	t.Helper()
	s := new(memSink)
	return startMemSink(t, h, f, s, filters...), s
}

// startMemSink registers a watcher writing to s, with its writer goroutine.
func startMemSink(t *testing.T, h *Hub, f format, s *memSink, filters ...string) *watcher {
	t.Helper()
	w := newWatcher(f, func() {})
	fs, err := parseFilters(filters, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.register(w, fs, "", false, 1); err != nil {
		t.Fatal(err)
	}
	gone, done := make(chan struct{}), make(chan struct{})
	w.setDirect(s.direct())
	go func() {
		defer close(done)
		defer h.wg.Done()
		defer h.unregister(w)
		_, _ = h.serve(w, s, gone)
	}()
	t.Cleanup(func() {
		close(gone)
		<-done
	})
	return w
}

// newMemHub returns a hub on l that is shut down at cleanup.
func newMemHub(t *testing.T, cfg Config) *Hub {
	t.Helper()
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Shutdown(context.Background()) })
	return h
}

func TestPublishSkipsPublishedIDs(t *testing.T) {
	l := newFakeLog("hubA")
	old := l.add("a", "a", "a") // committed before New
	h := newMemHub(t, Config{Log: l})
	_, s := startMem(t, h, formatSSE, "#")
	h.Publish(old)                              // late OnCommit of records the log had at New
	recs := append(old[1:], l.add("a", "a")...) // 2, 3, 4, 5
	h.Publish(recs)                             // only 4 and 5 are new
	h.Publish(recs[len(recs)-1:])               // 5 again
	waitFor(t, "events", func() bool { return strings.Count(s.String(), "id: ") == 2 })
	if got := s.String(); !strings.Contains(got, "id: hubA-0000000000000004\n") || !strings.Contains(got, "id: hubA-0000000000000005\n") {
		t.Errorf("got %q", got)
	}
	h.Publish(nil)
}

func TestFanoutEncodesOncePerFormat(t *testing.T) {
	l := newFakeLog("hubA")
	h := newMemHub(t, Config{Log: l})
	var ws, sse []*watcher
	for range 3 {
		w, _ := startMemNoWriter(t, h, formatWS, "#", "a/+")
		ws = append(ws, w)
		w, _ = startMemNoWriter(t, h, formatSSE, "a/b")
		sse = append(sse, w)
	}
	none, _ := startMemNoWriter(t, h, formatSSE, "c")
	h.Publish(l.add("a/b"))
	for _, group := range [][]*watcher{ws, sse} {
		var first *frame
		for _, w := range group {
			batch, _ := w.take(nil)
			if len(batch) != 1 {
				t.Fatalf("backlog %d, want the event once", len(batch))
			}
			if first == nil {
				first = batch[0]
			} else if batch[0] != first {
				t.Error("watchers of one format got different frames")
			}
		}
	}
	if batch, _ := none.take(nil); len(batch) != 0 {
		t.Errorf("non-matching watcher got %d frames", len(batch))
	}
}

// startMemNoWriter registers a watcher without a writer goroutine; the
// test takes its backlog itself.
func startMemNoWriter(t testing.TB, h *Hub, f format, filters ...string) (*watcher, *int) {
	t.Helper()
	cuts := new(int)
	w := newWatcher(f, func() { *cuts++ })
	fs, err := parseFilters(filters, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.register(w, fs, "", false, 0); err != nil {
		t.Fatal(err)
	}
	return w, cuts
}

// commitTo stages n copies of f for w as one commit, as Publish does.
func commitTo(w *watcher, f *frame, n, hard int) {
	for range n {
		w.stage = append(w.stage, f)
	}
	w.flushStage(hard)
}

func TestWatcherBacklog(t *testing.T) {
	f := &frame{b: []byte("x"), event: true}
	t.Run("one commit may exceed the hard limit", func(t *testing.T) {
		w := newWatcher(formatSSE, func() {})
		commitTo(w, f, 50, 10)
		if w.isSlow() {
			t.Fatal("slow after one commit")
		}
		if batch, slow := w.take(nil); slow || len(batch) != 50 {
			t.Fatalf("took %d, slow %v", len(batch), slow)
		}
		if len(w.stage) != 0 {
			t.Fatal("stage not emptied")
		}
	})
	t.Run("a backlog over the hard limit at the next commit is slow", func(t *testing.T) {
		cuts := 0
		w := newWatcher(formatSSE, func() { cuts++ })
		commitTo(w, f, 10, 10)
		commitTo(w, f, 1, 10) // 10 is not over 10
		if w.isSlow() {
			t.Fatal("slow at the limit")
		}
		commitTo(w, f, 1, 10)
		if !w.isSlow() || cuts != 1 || !w.aborted.Load() {
			t.Fatalf("slow %v cuts %d", w.isSlow(), cuts)
		}
		if _, slow := w.take(nil); !slow {
			t.Fatal("take did not report slow")
		}
		commitTo(w, f, 1, 10) // ignored
		w.pushControl(f)      // ignored
		if cuts != 1 {
			t.Fatalf("cut %d times", cuts)
		}
	})
	t.Run("over the queue limit after a write", func(t *testing.T) {
		w := newWatcher(formatSSE, func() {})
		commitTo(w, f, 5, 100)
		if w.overLimit(5) {
			t.Fatal("5 is not over 5")
		}
		w.pushControl(f)
		if !w.overLimit(5) || !w.isSlow() {
			t.Fatal("6 is over 5")
		}
	})
}

func TestWriterSlowAfterWrite(t *testing.T) {
	l := newFakeLog("hubA")
	h := newMemHub(t, Config{Log: l, QueueLimit: 2})
	w, _ := startMemNoWriter(t, h, formatSSE, "#")
	h.Publish(l.add("a"))
	s := &blockingSink{started: make(chan struct{}), release: make(chan struct{})}
	res := make(chan end, 1)
	go func() {
		wr := writer{h: h, w: w, s: s}
		e, _ := wr.round()
		res <- e
	}()
	<-s.started                     // the writer is writing event 1
	h.Publish(l.add("a", "a", "a")) // 3 > QueueLimit arrive meanwhile
	close(s.release)
	if e := <-res; e != endSlow {
		t.Fatalf("round ended %v, want slow", e)
	}
}

// blockingSink blocks its first write until release is closed.
type blockingSink struct {
	once    sync.Once
	started chan struct{}
	release chan struct{}
}

func (s *blockingSink) write([][]byte) error {
	s.once.Do(func() { close(s.started) })
	<-s.release
	return nil
}

func (s *blockingSink) writeRaw(b []byte) error { return s.write([][]byte{b}) }

func (s *blockingSink) direct() *directConn { return nil }

func TestWriterError(t *testing.T) {
	l := newFakeLog("hubA")
	h := newMemHub(t, Config{Log: l})
	w, _ := startMemNoWriter(t, h, formatSSE, "#")
	h.Publish(l.add("a"))
	boom := errors.New("boom")
	wr := writer{h: h, w: w, s: &memSink{fail: boom}}
	if e, err := wr.round(); e != endError || !errors.Is(err, boom) {
		t.Fatalf("round: %v %v", e, err)
	}
}

func TestSubscribeAfterUnregister(t *testing.T) {
	l := newFakeLog("hubA")
	h := newMemHub(t, Config{Log: l})
	w, _ := startMemNoWriter(t, h, formatWS, "a")
	h.unregister(w)
	h.unregister(w) // idempotent
	fs, _ := parseFilters([]string{"b"}, 10)
	if err := h.subscribe(w, fs, "", false, &frame{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("subscribe: %v", err)
	}
	if err := h.unsubscribe(w, fs, &frame{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("unsubscribe: %v", err)
	}
	h.control(w, &frame{})
	h.Publish(l.add("a", "b"))
	if batch, _ := w.take(nil); len(batch) != 0 {
		t.Fatalf("unregistered watcher got %d frames", len(batch))
	}
	if n := h.Watchers(); n != 0 {
		t.Fatalf("Watchers = %d", n)
	}
}

func TestShutdownDeadline(t *testing.T) {
	l := newFakeLog("hubA")
	h, err := New(Config{Log: l})
	if err != nil {
		t.Fatal(err)
	}
	cut := make(chan struct{})
	w := newWatcher(formatSSE, func() { close(cut) })
	if err := h.register(w, nil, "", false, 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if err := h.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want deadline exceeded", err)
	}
	<-cut // the stuck watcher's connection was cut
	h.unregister(w)
	h.wg.Done()
	if err := h.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if err := h.register(newWatcher(formatSSE, func() {}), nil, "", false, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("register after Shutdown: %v", err)
	}
}

func TestReplayChunks(t *testing.T) {
	l := newFakeLog("hubA")
	h := newMemHub(t, Config{Log: l})
	topics := make([]string, 1000)
	for i := range topics {
		topics[i] = []string{"a", "b"}[i%2]
	}
	commit(h, l, topics...)
	w := newWatcher(formatSSE, func() {})
	s := new(memSink)
	wr := writer{h: h, w: w, s: s}
	fs, _ := parseFilters([]string{"a"}, 1)
	if err := wr.replay(&replay{from: l.ids.Format(0), upTo: 1000, match: func(topic string) bool { return anyMatch(fs, topic) }}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(s.String(), "id: "); n != 500 {
		t.Fatalf("replayed %d events, want 500", n)
	}
	if l.scanCount() < 1000/64 || s.writes > 1000/64+1 {
		t.Errorf("%d scans, %d writes", l.scanCount(), s.writes)
	}
}

func TestReplayTrimmedWhileRunning(t *testing.T) {
	l := &trimmingLog{fakeLog: newFakeLog("hubA")}
	h := newMemHub(t, Config{Log: l})
	commit(h, l.fakeLog, repeat("a", 300)...)
	w := newWatcher(formatSSE, func() {})
	s := new(memSink)
	wr := writer{h: h, w: w, s: s}
	if err := wr.replay(&replay{from: l.ids.Format(0), upTo: 300, match: func(string) bool { return true }}); err != nil {
		t.Fatal(err)
	}
	// The first scan returns 1..64, then 65..200 are trimmed away.
	got := s.String()
	if !strings.Contains(got, "id: hubA-0000000000000040\n") || strings.Contains(got, "id: hubA-0000000000000041\n") {
		t.Errorf("unexpected replay around the trim")
	}
	if !strings.Contains(got, "event: reset\ndata: {\"oldest\":\"hubA-00000000000000c9\"}\n\nid: hubA-00000000000000c9\n") {
		t.Errorf("no reset before the oldest retained event in %q", got[:200])
	}
	if n := strings.Count(got, "id: "); n != 64+100 {
		t.Errorf("%d events, want %d", n, 64+100)
	}
}

// trimmingLog trims ids 1..200 right after its first Scan.
type trimmingLog struct {
	*fakeLog
	once sync.Once
}

func (l *trimmingLog) Scan(after, upTo uint64, match func(string) bool, limit int) ([]storage.Record, uint64, error) {
	recs, next, err := l.fakeLog.Scan(after, upTo, match, limit)
	l.once.Do(func() { l.trim(200) })
	return recs, next, err
}

func TestReplayNoProgress(t *testing.T) {
	l := &stuckLog{fakeLog: newFakeLog("hubA")}
	h := newMemHub(t, Config{Log: l})
	commit(h, l.fakeLog, "a", "a")
	wr := writer{h: h, w: newWatcher(formatSSE, func() {}), s: new(memSink)}
	err := wr.replay(&replay{from: l.ids.Format(0), upTo: 2, match: func(string) bool { return true }})
	if !errors.Is(err, errReplay) || !strings.Contains(err.Error(), "no progress") {
		t.Fatalf("replay: %v", err)
	}
}

// stuckLog's Scan never moves.
type stuckLog struct{ *fakeLog }

func (l *stuckLog) Scan(after, _ uint64, _ func(string) bool, _ int) ([]storage.Record, uint64, error) {
	return nil, after, nil
}

func TestStartOnce(t *testing.T) {
	h, err := New(Config{Log: newFakeLog("hubA")})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := h.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start = %v, want ErrStarted", err)
	}
	if err := h.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	stopped, err := New(Config{Log: newFakeLog("hubA")})
	if err != nil {
		t.Fatal(err)
	}
	if err := stopped.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := stopped.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Shutdown = %v, want ErrClosed", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := newMemHubUnstarted(t).Start(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start with a done context = %v", err)
	}
}

// newMemHubUnstarted returns a hub that is not started, shut down at
// cleanup.
func newMemHubUnstarted(t *testing.T) *Hub {
	t.Helper()
	h, err := New(Config{Log: newFakeLog("hubA")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Shutdown(context.Background()) })
	return h
}
