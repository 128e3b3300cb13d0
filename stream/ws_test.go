package stream

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lxzan/gws"

	"github.com/telehub/telehub/storage"
)

// wantEvent checks that m is the event of rec.
func wantEvent(t *testing.T, ids storage.IDCodec, m wsMsg, rec storage.Record) {
	t.Helper()
	if m.Op != "event" || m.ID != ids.Format(rec.ID) || m.Event != rec.Kind.String() || string(m.Data) != string(rec.Data) {
		t.Fatalf("got %+v (data %s), want event %d %s", m, m.Data, rec.ID, rec.Data)
	}
}

func TestWSSubscribeUnsubscribe(t *testing.T) {
	th := newTestHub(t, Config{})
	c := dialWS(t, th, nil)
	c.subscribe("", "telemetry/+/temp")
	recs := commit(th.Hub, th.log, "telemetry/d1/temp", "telemetry/d1/hum", "telemetry/d2/temp")
	wantEvent(t, th.log.ids, c.next(), recs[0])
	wantEvent(t, th.log.ids, c.next(), recs[2])

	c.subscribe("", "presence/#", "telemetry/+/temp") // the second one is held already
	recs = commit(th.Hub, th.log, "presence/d1", "telemetry/d3/temp")
	wantEvent(t, th.log.ids, c.next(), recs[0])
	wantEvent(t, th.log.ids, c.next(), recs[1])

	c.send(map[string]any{"op": "unsubscribe", "topics": []string{"telemetry/+/temp", "never/subscribed"}})
	if m := c.next(); m.Op != "unsubscribed" || strings.Join(m.Topics, ",") != "telemetry/+/temp,never/subscribed" {
		t.Fatalf("got %+v, want unsubscribed", m)
	}
	recs = commit(th.Hub, th.log, "telemetry/d4/temp", "presence/d2")
	wantEvent(t, th.log.ids, c.next(), recs[1])
}

func TestWSEventFrame(t *testing.T) {
	th := newTestHub(t, Config{})
	c := dialWS(t, th, nil)
	c.subscribe("", "#")
	for _, size := range []int{10, 200, 70000} { // the three header lengths
		rec := th.log.add("telemetry/d1/temp")[0]
		rec.Data = fmt.Appendf(nil, `{"pad":%q}`, strings.Repeat("x", size))
		th.Publish([]storage.Record{rec})
		wantEvent(t, th.log.ids, c.next(), rec)
	}
}

func TestWSBadRequests(t *testing.T) {
	tests := []struct {
		name, msg, want string
	}{
		{"not json", `hello`, "invalid JSON"},
		{"not an object", `[1,2]`, "invalid JSON"},
		{"unknown op", `{"op":"publish","topics":["a"]}`, `unknown op "publish"`},
		{"no op", `{"topics":["a"]}`, `unknown op ""`},
		{"no topics", `{"op":"subscribe"}`, "needs at least one topic"},
		{"empty topics", `{"op":"unsubscribe","topics":[]}`, "needs at least one topic"},
		{"topics not strings", `{"op":"subscribe","topics":[1]}`, "invalid JSON"},
		{"bad filter", `{"op":"subscribe","topics":["ok/#","a/#/b"]}`, "a/#/b"},
		{"plus in level", `{"op":"unsubscribe","topics":["a+"]}`, "a+"},
		{"too many", `{"op":"subscribe","topics":["a","b","c","d","e"]}`, "too many"},
	}
	th := newTestHub(t, Config{MaxFilters: 4})
	c := dialWS(t, th, nil)
	for _, tt := range tests {
		c.sendRaw([]byte(tt.msg))
		if m := c.next(); m.Op != "error" || !strings.Contains(m.Message, tt.want) {
			t.Fatalf("%s: got %+v, want an error about %q", tt.name, m, tt.want)
		}
	}
	// The connection is still open, and nothing of the bad ones applied.
	c.subscribe("", "a", "b", "c")
	c.send(map[string]any{"op": "subscribe", "topics": []string{"d", "e"}})
	if m := c.next(); m.Op != "error" || !strings.Contains(m.Message, "too many") {
		t.Fatalf("got %+v, want too many filters", m)
	}
	recs := commit(th.Hub, th.log, "ok/x", "b")
	wantEvent(t, th.log.ids, c.next(), recs[1])
}

func TestWSResume(t *testing.T) {
	tests := []struct {
		name     string
		from     func(storage.IDCodec) string
		reset    bool
		replayed []uint64
	}{
		{"resume", func(c storage.IDCodec) string { return c.Format(7) }, false, []uint64{8, 9, 10}},
		{"expired", func(c storage.IDCodec) string { return c.Format(2) }, true, []uint64{6, 7, 8, 9, 10}},
		{"foreign", func(storage.IDCodec) string { return storage.NewIDCodec("hubB").Format(8) }, true, []uint64{6, 7, 8, 9, 10}},
		{"malformed", func(storage.IDCodec) string { return "x-y" }, true, []uint64{6, 7, 8, 9, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := newTestHub(t, Config{})
			commit(th.Hub, th.log, repeat("telemetry/d1/temp", 10)...)
			th.log.trim(5)
			c := dialWS(t, th, nil)
			c.subscribe(tt.from(th.log.ids), "telemetry/#")
			if tt.reset {
				m := c.next()
				if m.Op != "reset" || m.Oldest == nil || *m.Oldest != th.log.ids.Format(6) {
					t.Fatalf("got %+v, want reset from 6", m)
				}
			}
			for _, id := range tt.replayed {
				if m := c.next(); m.Op != "event" || m.ID != th.log.ids.Format(id) {
					t.Fatalf("got %+v, want event %d", m, id)
				}
			}
			rec := commit(th.Hub, th.log, "telemetry/d1/temp")[0]
			wantEvent(t, th.log.ids, c.next(), rec)
		})
	}
}

// A subscribe that resumes replays only what its new filters add: events
// that filters held before matched were delivered live.
func TestWSResumeNewFiltersOnly(t *testing.T) {
	th := newTestHub(t, Config{})
	c := dialWS(t, th, nil)
	c.subscribe("", "telemetry/d1/#")
	recs := commit(th.Hub, th.log, "telemetry/d1/temp", "telemetry/d2/temp", "telemetry/d1/hum", "telemetry/d2/hum")
	wantEvent(t, th.log.ids, c.next(), recs[0])
	wantEvent(t, th.log.ids, c.next(), recs[2])
	c.subscribe(th.log.ids.Format(recs[0].ID), "telemetry/+/hum", "telemetry/d2/temp")
	wantEvent(t, th.log.ids, c.next(), recs[1]) // d2/temp
	wantEvent(t, th.log.ids, c.next(), recs[3]) // d2/hum; d1/hum was live
	rec := commit(th.Hub, th.log, "telemetry/d1/hum")[0]
	wantEvent(t, th.log.ids, c.next(), rec) // once, though two filters match
}

// A held filter delivered live only what came after it was added: a resume
// from before that point replays the earlier events it also matches.
func TestWSResumeBeforeHeldFilter(t *testing.T) {
	th := newTestHub(t, Config{})
	early := commit(th.Hub, th.log, "telemetry/d1/temp", "telemetry/d1/temp")
	c := dialWS(t, th, nil)
	c.subscribe("", "telemetry/+/temp")
	late := commit(th.Hub, th.log, "telemetry/d1/temp", "telemetry/d1/hum")
	wantEvent(t, th.log.ids, c.next(), late[0]) // live through +/temp
	c.subscribe(th.log.ids.Format(early[0].ID), "telemetry/d1/#")
	wantEvent(t, th.log.ids, c.next(), early[1]) // before +/temp was held: never sent
	wantEvent(t, th.log.ids, c.next(), late[1])  // hum: only d1/# matches
	rec := commit(th.Hub, th.log, "telemetry/d1/temp")[0]
	wantEvent(t, th.log.ids, c.next(), rec) // once, though two filters match
}

func TestWSResumeWhilePublishing(t *testing.T) {
	th := newTestHub(t, Config{})
	commit(th.Hub, th.log, repeat("telemetry/d1/temp", 500)...)
	const total = 3000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range total / 5 {
			commit(th.Hub, th.log, repeat("telemetry/d1/temp", 5)...)
			time.Sleep(20 * time.Microsecond)
		}
	}()
	c := dialWS(t, th, nil)
	c.subscribe(th.log.ids.Format(100), "#")
	for id := uint64(101); id <= 500+total; id++ {
		if m := c.next(); m.Op != "event" || m.ID != th.log.ids.Format(id) {
			t.Fatalf("got %+v, want event %d", m, id)
		}
	}
	wg.Wait()
}

func TestWSOrigin(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		origin  string
		ok      bool
	}{
		{"no origin", nil, "", true},
		{"same host", nil, "http://HOST", true},
		{"other host", nil, "http://evil.example", false},
		{"other port", nil, "http://127.0.0.1:1", false},
		{"allowed", []string{"https://ops.example/"}, "https://OPS.example", true},
		{"not in list", []string{"https://ops.example"}, "https://evil.example", false},
		{"any", []string{"*"}, "https://evil.example", true},
		{"garbage", nil, "::%%", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := newTestHub(t, Config{AllowedOrigins: tt.allowed})
			hd := http.Header{}
			if tt.origin != "" {
				hd.Set("Origin", strings.Replace(tt.origin, "HOST", th.srv.Listener.Addr().String(), 1))
			}
			if tt.ok {
				dialWS(t, th, hd).subscribe("", "#")
				return
			}
			req, err := http.NewRequest(http.MethodGet, th.srv.URL+"/v1/stream/ws", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = hd
			resp, err := th.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			checkErrorResponse(t, resp, http.StatusForbidden, "forbidden")
		})
	}
}

func TestWSNotUpgrade(t *testing.T) {
	th := newTestHub(t, Config{})
	resp, err := th.srv.Client().Get(th.srv.URL + "/v1/stream/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d, want 400", resp.StatusCode)
	}
	if n := th.Watchers(); n != 0 {
		t.Errorf("Watchers = %d", n)
	}
}

func TestWSPing(t *testing.T) {
	th := newTestHub(t, Config{Heartbeat: 200 * time.Millisecond})
	c := dialWS(t, th, nil)
	waitFor(t, "pings", func() bool { return c.pings.Load() >= 3 })
	c.subscribe("", "#") // still open: the pongs kept it alive
}

// silentClient answers no ping and sends nothing.
type silentClient struct {
	gws.BuiltinEventHandler
	closed chan error
}

func (s *silentClient) OnPing(*gws.Conn, []byte) {}

func (s *silentClient) OnClose(_ *gws.Conn, err error) { s.closed <- err }

func TestWSSilentPeerClosed(t *testing.T) {
	th := newTestHub(t, Config{Heartbeat: 20 * time.Millisecond})
	h := &silentClient{closed: make(chan error, 1)}
	conn, resp, err := gws.NewClient(h, &gws.ClientOption{
		Addr: "ws" + strings.TrimPrefix(th.srv.URL, "http") + "/v1/stream/ws",
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	go conn.ReadLoop()
	select {
	case <-h.closed:
	case <-time.After(guard):
		t.Fatal("a silent watcher was not closed")
	}
	waitFor(t, "unregistered", func() bool { return th.Watchers() == 0 })
}

func TestWSProtocolViolations(t *testing.T) {
	big, _ := json.Marshal(map[string]any{"op": "subscribe", "topics": []string{strings.Repeat("a", 70000)}})
	tests := []struct {
		name string
		msg  []byte
		code uint16
	}{
		{"message over 64 KiB", big, 1009},
		{"invalid UTF-8", []byte("{\"op\":\"subscribe\",\"topics\":[\"\xff\"]}"), 1007},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := newTestHub(t, Config{})
			c := dialWS(t, th, nil)
			c.sendRaw(tt.msg)
			if ce := c.waitClosed(); ce == nil || ce.Code != tt.code {
				t.Fatalf("closed with %+v, want %d", ce, tt.code)
			}
			waitFor(t, "unregistered", func() bool { return th.Watchers() == 0 })
		})
	}
}
