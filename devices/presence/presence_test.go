package presence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/telehub/telehub/bridge"
)

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no presence writer", Config{}},
		{"negative timeout", Config{Sink: &recordingSink{}, Timeout: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New error = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestTrackerStartAndClose(t *testing.T) {
	l, err := New(Config{Sink: &recordingSink{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := l.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start = %v, want ErrStarted", err)
	}
	if err := l.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := l.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}

	unstarted, err := New(Config{Sink: &recordingSink{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := unstarted.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown without Start: %v", err)
	}
	if err := unstarted.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Shutdown = %v, want ErrClosed", err)
	}
}

func TestTrackerSessions(t *testing.T) {
	tests := []struct {
		name string
		run  func(l *Tracker)
		want []string
	}{
		{
			name: "connect starts a session",
			run:  func(l *Tracker) { l.Connect("d1", "ws", bridge.ReasonConnect) },
			want: []string{"d1 online=true ws session=1 connect"},
		},
		{
			name: "a replacing connection emits connect with the new session",
			run: func(l *Tracker) {
				l.Connect("d1", "ws", bridge.ReasonConnect)
				l.Connect("d1", "ws", bridge.ReasonConnect)
			},
			want: []string{"d1 online=true ws session=1 connect", "d1 online=true ws session=2 connect"},
		},
		{
			name: "stale disconnect is ignored",
			run: func(l *Tracker) {
				l.Connect("d1", "ws", bridge.ReasonConnect)
				l.Connect("d1", "ws", bridge.ReasonConnect)
				l.Disconnect("d1", 1, bridge.ReasonDisconnect)
			},
			want: []string{"d1 online=true ws session=1 connect", "d1 online=true ws session=2 connect"},
		},
		{
			name: "disconnect of the current session goes offline once",
			run: func(l *Tracker) {
				l.Connect("d1", "mqtt", bridge.ReasonConnect)
				l.Disconnect("d1", 1, bridge.ReasonWill)
				l.Disconnect("d1", 1, bridge.ReasonDisconnect)
			},
			want: []string{"d1 online=true mqtt session=1 connect", "d1 online=false mqtt session=1 will"},
		},
		{
			name: "disconnect of an unknown device is ignored",
			run:  func(l *Tracker) { l.Disconnect("nobody", 0, bridge.ReasonDisconnect) },
		},
		{
			name: "first publish of an unknown device",
			run: func(l *Tracker) {
				l.Heard("d1", "mqtt")
				l.Heard("d1", "mqtt")
			},
			want: []string{"d1 online=true mqtt session=1 message"},
		},
		{
			name: "heard after a disconnect starts a new session",
			run: func(l *Tracker) {
				l.Connect("d1", "mqtt", bridge.ReasonMessage)
				l.Disconnect("d1", 1, bridge.ReasonDisconnect)
				l.Heard("d1", "mqtt")
			},
			want: []string{
				"d1 online=true mqtt session=1 message",
				"d1 online=false mqtt session=1 disconnect",
				"d1 online=true mqtt session=2 message",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, rec := newTestTracker(t)
			tt.run(l)
			wantEvents(t, rec.take(), tt.want...)
		})
	}
}

func TestTrackerSessionAndLastSeen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, _ := newTestTracker(t)
		if s, online := l.Session("d1"); s != 0 || online {
			t.Fatalf("Session of unknown device = %d, %v", s, online)
		}
		if _, _, _, ok := l.LastSeen("d1"); ok {
			t.Fatal("LastSeen of unknown device: ok")
		}
		l.Connect("d1", "ws", bridge.ReasonConnect)
		time.Sleep(3 * time.Second)
		l.Heard("d1", "ws")
		if s, online := l.Session("d1"); s != 1 || !online {
			t.Fatalf("Session = %d, %v; want 1, true", s, online)
		}
		at, online, transport, ok := l.LastSeen("d1")
		if !ok || !online || transport != "ws" || !at.Equal(time.Now()) {
			t.Fatalf("LastSeen = %v %v %q %v; want now, true, ws, true", at, online, transport, ok)
		}
	})
}

func TestTrackerTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, rec := newTestTracker(t)
		start := time.Now()
		l.Connect("d1", "ws", bridge.ReasonConnect)
		rec.take()

		time.Sleep(45*time.Second - time.Millisecond)
		synctest.Wait()
		wantEvents(t, rec.take())

		time.Sleep(time.Millisecond)
		synctest.Wait()
		got := rec.take()
		wantEvents(t, got, "d1 online=false ws session=1 timeout")
		if want := start.Add(45 * time.Second); !got[0].At.Equal(want) {
			t.Fatalf("timeout event at %v, want %v", got[0].At, want)
		}
		if _, online := l.Session("d1"); online {
			t.Fatal("device still online after its timeout")
		}
	})
}

func TestTrackerHeardKeepsAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, rec := newTestTracker(t)
		l.Connect("d1", "ws", bridge.ReasonConnect)
		l.Connect("d2", "ws", bridge.ReasonConnect)
		rec.take()
		for range 10 {
			time.Sleep(30 * time.Second)
			l.Heard("d1", "ws")
		}
		synctest.Wait()
		// d2 went silent at 0s: offline at 45s; d1 is alive after 300s.
		wantEvents(t, rec.take(), "d2 online=false ws session=1 timeout")

		last := time.Now()
		time.Sleep(time.Hour)
		got := rec.take()
		wantEvents(t, got, "d1 online=false ws session=1 timeout")
		if want := last.Add(45 * time.Second); !got[0].At.Equal(want) {
			t.Fatalf("timeout at %v, want 45s after the last Heard (%v)", got[0].At, want)
		}
	})
}

func TestTrackerHeardAfterTimeoutStartsSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, rec := newTestTracker(t)
		l.Connect("d1", "ws", bridge.ReasonConnect)
		time.Sleep(time.Minute)
		l.Heard("d1", "ws")
		l.Disconnect("d1", 1, bridge.ReasonDisconnect) // the old connection's late close
		time.Sleep(time.Minute)
		wantEvents(t, rec.take(),
			"d1 online=true ws session=1 connect",
			"d1 online=false ws session=1 timeout",
			"d1 online=true ws session=2 message",
			"d1 online=false ws session=2 timeout",
		)
	})
}

func TestTrackerReconnectBeforeDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, rec := newTestTracker(t)
		l.Connect("d1", "ws", bridge.ReasonConnect)
		time.Sleep(40 * time.Second)
		l.Disconnect("d1", 1, bridge.ReasonDisconnect)
		l.Connect("d1", "ws", bridge.ReasonConnect) // keeps the heap entry of session 1
		time.Sleep(30 * time.Second)                // past the first deadline, before the second
		synctest.Wait()
		wantEvents(t, rec.take(),
			"d1 online=true ws session=1 connect",
			"d1 online=false ws session=1 disconnect",
			"d1 online=true ws session=2 connect",
		)
		time.Sleep(20 * time.Second)
		synctest.Wait()
		wantEvents(t, rec.take(), "d1 online=false ws session=2 timeout")
	})
}

func TestTrackerOfflineDeviceLeavesTheHeap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, rec := newTestTracker(t)
		l.Connect("d1", "ws", bridge.ReasonConnect)
		l.Disconnect("d1", 1, bridge.ReasonDisconnect)
		time.Sleep(time.Minute)
		wantEvents(t, rec.take(), "d1 online=true ws session=1 connect", "d1 online=false ws session=1 disconnect")
		l.mu.Lock()
		defer l.mu.Unlock()
		if n := len(l.deadlines); n != 0 {
			t.Fatalf("%d deadlines left for an offline device", n)
		}
	})
}

func TestTrackerManyTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, rec := newTestTracker(t)
		const n = 3*expireBatch + 7
		for i := range n {
			l.Connect(fmt.Sprintf("d%d", i), "mqtt", bridge.ReasonConnect)
		}
		rec.take()
		time.Sleep(time.Minute)
		offline := map[string]bool{}
		for _, e := range rec.take() {
			if e.Online || e.Reason != bridge.ReasonTimeout {
				t.Fatalf("unexpected event %v", e)
			}
			offline[e.Device] = true
		}
		if len(offline) != n {
			t.Fatalf("%d devices timed out, want %d", len(offline), n)
		}
	})
}

func TestTrackerStartupMarksKnownOffline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seen := time.Now().Add(-time.Hour)
		known := []Record{
			{ID: "a", Transport: "ws", Online: true, Session: 7, LastSeen: seen},
			{ID: "b", Transport: "mqtt", Online: false, Session: 3, LastSeen: seen},
			{ID: "c", Transport: "mqtt", Online: true, Session: 2, LastSeen: seen},
			{ID: "c", Transport: "mqtt", Online: false, Session: 1}, // an older record of c loses
			{ID: "d", Transport: "", Session: 1},                    // never seen: no LastSeen
		}
		l, rec := newTestTracker(t, known...)
		wantEvents(t, rec.take(),
			"a online=false ws session=7 disconnect",
			"c online=false mqtt session=2 disconnect",
		)
		if at, online, transport, ok := l.LastSeen("b"); !ok || online || transport != "mqtt" || !at.Equal(seen) {
			t.Fatalf("LastSeen(b) = %v %v %q %v", at, online, transport, ok)
		}
		if at, _, _, ok := l.LastSeen("d"); !ok || !at.IsZero() {
			t.Fatalf("LastSeen(d) = %v, %v; want the zero time", at, ok)
		}
		l.Connect("a", "ws", bridge.ReasonConnect)
		time.Sleep(time.Second)
		l.Heard("b", "mqtt")
		wantEvents(t, rec.take(),
			"a online=true ws session=8 connect",
			"b online=true mqtt session=4 message",
		)
		time.Sleep(time.Minute) // known devices never heard since the start do not time out again
		wantEvents(t, rec.take(),
			"a online=false ws session=8 timeout",
			"b online=false mqtt session=4 timeout",
		)
	})
}

// Devices whose connections may outlive the hub (an external broker's)
// stay online across the start and are then judged by the timeout.
func TestTrackerStartupResumesSurvivingConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seen := time.Now().Add(-time.Hour)
		rec := &recordingSink{}
		l, err := New(Config{
			Sink: rec,
			Known: []Record{
				{ID: "ext", Transport: "mqtt", Online: true, Session: 4, LastSeen: seen},
				{ID: "quiet", Transport: "mqtt", Online: true, Session: 9, LastSeen: seen},
				{ID: "ws", Transport: "ws", Online: true, Session: 2, LastSeen: seen},
			},
			Resume:  func(d Record) bool { return d.Transport == "mqtt" },
			Timeout: 45 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer l.Shutdown(context.Background())
		wantEvents(t, rec.take(), "ws online=false ws session=2 disconnect")
		if s, online := l.Session("ext"); !online || s != 4 {
			t.Fatalf("ext: session %d online %v, want 4 and online", s, online)
		}
		time.Sleep(30 * time.Second)
		l.Heard("ext", "mqtt") // still publishing through the broker
		time.Sleep(20 * time.Second)
		wantEvents(t, rec.take(), "quiet online=false mqtt session=9 timeout")
		if s, online := l.Session("ext"); !online || s != 4 {
			t.Fatalf("ext after being heard: session %d online %v, want 4 and online", s, online)
		}
	})
}

func TestTrackerConnectBeforeStart(t *testing.T) {
	rec := &recordingSink{}
	l, err := New(Config{
		Sink:  rec,
		Known: []Record{{ID: "a", Transport: "ws", Online: true, Session: 4}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Shutdown(context.Background())
	l.Connect("a", "ws", bridge.ReasonConnect)
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// a reconnected before Start: its stale online record needs no offline event.
	wantEvents(t, rec.take(), "a online=true ws session=5 connect")
}

func TestTrackerPresenceWriterError(t *testing.T) {
	var logs strings.Builder
	rec := &recordingSink{err: errors.New("storage closed")}
	l, err := New(Config{Sink: rec, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Shutdown(context.Background())
	if s := l.Connect("d1", "ws", bridge.ReasonConnect); s != 1 {
		t.Fatalf("session = %d, want 1", s)
	}
	if !strings.Contains(logs.String(), "presence event not submitted") {
		t.Fatalf("error not logged; logs: %s", logs.String())
	}
	rec.mu.Lock()
	rec.err, rec.commitErr = nil, errors.New("disk full")
	rec.mu.Unlock()
	l.Disconnect("d1", 1, bridge.ReasonDisconnect)
	if !strings.Contains(logs.String(), "presence event not stored") {
		t.Fatalf("store error not logged; logs: %s", logs.String())
	}
}

func BenchmarkTrackerHeard(b *testing.B) {
	l, err := New(Config{Sink: &recordingSink{}})
	if err != nil {
		b.Fatal(err)
	}
	if err := l.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer l.Shutdown(context.Background())
	ids := make([]string, 10000)
	for i := range ids {
		ids[i] = fmt.Sprintf("dev-%d", i)
		l.Connect(ids[i], "ws", bridge.ReasonConnect)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.Heard(ids[i%len(ids)], "ws")
			i++
		}
	})
}
