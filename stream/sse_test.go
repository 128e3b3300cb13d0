package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/telehub/telehub/storage"
)

func TestSSEFraming(t *testing.T) {
	th := newTestHub(t, Config{})
	s, resp := dialSSE(t, th, "", nil)
	for k, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	readExact(t, s.r, "retry: 2000\n\n")
	waitFor(t, "registration", func() bool { return th.Watchers() == 1 })

	tests := []struct {
		topic, kind string
	}{
		{"telemetry/d1/temp", "telemetry"},
		{"presence/d1", "presence"},
		{"errors/d1", "error"},
	}
	for _, tt := range tests {
		rec := commit(th.Hub, th.log, tt.topic)[0]
		want := fmt.Sprintf("id: %s\nevent: %s\ndata: %s\n\n", th.log.ids.Format(rec.ID), tt.kind, rec.Data)
		readExact(t, s.r, want)
	}
}

// readExact reads len(want) bytes and compares them to want.
func readExact(t *testing.T, r io.Reader, want string) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatalf("read %q: %v", want, err)
	}
	if string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestSSEFilters(t *testing.T) {
	published := []string{
		"telemetry/d1/temp", "telemetry/d1/hum", "telemetry/d2/temp", "telemetry/pump-7/flow",
		"presence/d1", "errors/d2", "telemetry/pump-7/temp", "presence/pump-7",
	}
	tests := []struct {
		name    string
		filters []string
		want    []string
	}{
		{"default is #", nil, published},
		{"#", []string{"#"}, published},
		{"plus", []string{"telemetry/+/temp"}, []string{"telemetry/d1/temp", "telemetry/d2/temp", "telemetry/pump-7/temp"}},
		{"hash", []string{"telemetry/pump-7/#"}, []string{"telemetry/pump-7/flow", "telemetry/pump-7/temp"}},
		{"exact", []string{"telemetry/d1/hum"}, []string{"telemetry/d1/hum"}},
		{"several params", []string{"presence/#", "errors/#"}, []string{"presence/d1", "errors/d2", "presence/pump-7"}},
		{"overlapping once", []string{"telemetry/#", "telemetry/d1/temp", "+/d1"}, []string{
			"telemetry/d1/temp", "telemetry/d1/hum", "telemetry/d2/temp", "telemetry/pump-7/flow",
			"presence/d1", "telemetry/pump-7/temp",
		}},
		{"plus plus", []string{"+/+"}, []string{"presence/d1", "errors/d2", "presence/pump-7"}},
		{"no match", []string{"telemetry/d9/#"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := newTestHub(t, Config{})
			q := url.Values{"topic": tt.filters}
			if tt.filters != nil {
				q.Add("topic", "sentinel/end")
			}
			s := openSSE(t, th, q.Encode(), nil)
			waitFor(t, "registration", func() bool { return th.Watchers() == 1 })
			commit(th.Hub, th.log, published...)
			commit(th.Hub, th.log, "sentinel/end")
			var got []string
			var last string
			for {
				ev := s.nextEvent()
				if ev.id <= last {
					t.Fatalf("id %s after %s", ev.id, last)
				}
				last = ev.id
				var d struct{ Topic string }
				if err := json.Unmarshal([]byte(ev.data), &d); err != nil {
					t.Fatalf("data %q: %v", ev.data, err)
				}
				if d.Topic == "sentinel/end" {
					break
				}
				got = append(got, d.Topic)
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestSSEBadRequest(t *testing.T) {
	tests := []struct {
		name   string
		topics []string
	}{
		{"hash not last", []string{"a/#/b"}},
		{"plus inside level", []string{"telemetry/d+/temp"}},
		{"hash inside level", []string{"telemetry/d1#"}},
		{"empty", []string{""}},
		{"too long", []string{strings.Repeat("a", 257)}},
		{"one bad among good", []string{"presence/#", "a/#/b"}},
		{"too many filters", []string{"a", "b", "c", "d", "e"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := newTestHub(t, Config{MaxFilters: 4})
			_, resp := dialSSE(t, th, url.Values{"topic": tt.topics}.Encode(), nil)
			checkErrorResponse(t, resp, http.StatusBadRequest, "bad_request")
			if n := th.Watchers(); n != 0 {
				t.Errorf("Watchers = %d", n)
			}
		})
	}
}

// An unencoded # in the URL starts its fragment, which the client does
// not send: the hub sees "telemetry/" and says how to write the filter.
func TestSSEUnencodedHash(t *testing.T) {
	th := newTestHub(t, Config{MaxFilters: 4})
	_, resp := dialSSE(t, th, "topic=telemetry/#", nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body.Error.Message, "topic=telemetry/%23") {
		t.Fatalf("message %q gives no fix", body.Error.Message)
	}
	if n := th.Watchers(); n != 0 {
		t.Errorf("Watchers = %d", n)
	}
}

// checkErrorResponse checks status and the JSON error body's code.
func checkErrorResponse(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d", resp.StatusCode, status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("error body: %v", err)
	}
	if body.Error.Code != code || body.Error.Message == "" {
		t.Errorf("error body %+v, want code %s and a message", body, code)
	}
}

func TestSSEPing(t *testing.T) {
	th := newTestHub(t, Config{Heartbeat: 20 * time.Millisecond})
	s := openSSE(t, th, "", nil)
	readExact(t, s.r, ": ping\n\n")
	readExact(t, s.r, ": ping\n\n")
}

func TestSSEResumeReset(t *testing.T) {
	other := storage.NewIDCodec("hubB")
	tests := []struct {
		name      string
		trimTo    uint64
		from      func(ids storage.IDCodec) string
		useQuery  bool
		reset     bool
		oldest    uint64 // 0: none retained
		replayed  []uint64
		firstLive uint64
	}{
		{"resume", 5, func(c storage.IDCodec) string { return c.Format(7) }, false, false, 0, []uint64{8, 9, 10}, 11},
		{"resume by query", 5, func(c storage.IDCodec) string { return c.Format(7) }, true, false, 0, []uint64{8, 9, 10}, 11},
		{"just before oldest", 5, func(c storage.IDCodec) string { return c.Format(5) }, false, false, 0, []uint64{6, 7, 8, 9, 10}, 11},
		{"up to date", 5, func(c storage.IDCodec) string { return c.Format(10) }, false, false, 0, nil, 11},
		{"expired", 5, func(c storage.IDCodec) string { return c.Format(3) }, false, true, 6, []uint64{6, 7, 8, 9, 10}, 11},
		{"foreign", 5, func(storage.IDCodec) string { return other.Format(7) }, false, true, 6, []uint64{6, 7, 8, 9, 10}, 11},
		{"malformed", 5, func(storage.IDCodec) string { return "garbage" }, true, true, 6, []uint64{6, 7, 8, 9, 10}, 11},
		{"beyond last", 5, func(c storage.IDCodec) string { return c.Format(50) }, false, true, 6, []uint64{6, 7, 8, 9, 10}, 11},
		{"nothing retained", 10, func(c storage.IDCodec) string { return c.Format(3) }, false, true, 0, nil, 11},
		{"nothing retained, up to date", 10, func(c storage.IDCodec) string { return c.Format(10) }, false, false, 0, nil, 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := newTestHub(t, Config{})
			commit(th.Hub, th.log, repeat("telemetry/d1/temp", 10)...)
			th.log.trim(tt.trimTo)
			ids := th.log.ids
			var s *sseStream
			if tt.useQuery {
				s = openSSE(t, th, url.Values{"last_event_id": {tt.from(ids)}}.Encode(), nil)
			} else {
				s = openSSE(t, th, "", http.Header{"Last-Event-Id": {tt.from(ids)}})
			}
			if tt.reset {
				ev := s.nextEvent()
				want := `{"oldest":""}`
				if tt.oldest != 0 {
					want = fmt.Sprintf(`{"oldest":%q}`, ids.Format(tt.oldest))
				}
				if ev.event != "reset" || ev.hasID || ev.data != want {
					t.Fatalf("got %+v, want reset without id, data %s", ev, want)
				}
			}
			for _, id := range tt.replayed {
				if ev := s.nextEvent(); ev.id != ids.Format(id) || ev.event != "telemetry" {
					t.Fatalf("got %+v, want event %d", ev, id)
				}
			}
			commit(th.Hub, th.log, "telemetry/d1/temp")
			if ev := s.nextEvent(); ev.id != ids.Format(tt.firstLive) {
				t.Fatalf("first live event %+v, want %d", ev, tt.firstLive)
			}
		})
	}
}

func TestSSEResumeWhilePublishing(t *testing.T) {
	th := newTestHub(t, Config{})
	q := url.Values{"topic": {"telemetry/d1/#"}}
	first := openSSE(t, th, q.Encode(), nil)

	const total = 4000
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the producer: d1 and d2 alternately, in batches of 1..7
		defer wg.Done()
		for n, b := 0, 1; n < total; n, b = n+b, b%7+1 {
			topics := make([]string, b)
			for i := range topics {
				topics[i] = fmt.Sprintf("telemetry/d%d/temp", 1+(n+i)%2)
			}
			commit(th.Hub, th.log, topics...)
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Microsecond):
			}
		}
	}()
	defer wg.Wait()
	defer close(stop)

	var got []string
	read := func(s *sseStream, n int) {
		for range n {
			id := s.nextEvent().id
			// d1 events are the odd ids.
			if want := th.log.ids.Format(uint64(2*len(got) + 1)); id != want {
				t.Fatalf("event %d: got id %s, want %s", len(got), id, want)
			}
			got = append(got, id)
		}
		s.close()
	}
	read(first, 100)
	for i := range 6 { // reconnect while the producer goes on
		last := got[len(got)-1]
		if i%2 == 0 {
			read(openSSE(t, th, q.Encode(), http.Header{"Last-Event-Id": {last}}), 100)
		} else {
			q2 := url.Values{"topic": {"telemetry/d1/#"}, "last_event_id": {last}}
			read(openSSE(t, th, q2.Encode(), nil), 100)
		}
	}
	wg.Wait()
	d1 := 0
	for _, r := range th.log.recs {
		if r.Topic == "telemetry/d1/temp" {
			d1++
		}
	}
	read(openSSE(t, th, q.Encode(), http.Header{"Last-Event-Id": {got[len(got)-1]}}), d1-len(got))
	if len(got) != d1 || d1 < total/2 {
		t.Fatalf("got %d events, want %d", len(got), d1)
	}
}

func TestSSEReplayError(t *testing.T) {
	th := newTestHub(t, Config{})
	commit(th.Hub, th.log, repeat("telemetry/d1/temp", 3)...)
	th.log.mu.Lock()
	th.log.scanErr = errors.New("disk on fire")
	th.log.mu.Unlock()
	s := openSSE(t, th, "", http.Header{"Last-Event-Id": {th.log.ids.Format(1)}})
	if ev, err := s.next(); err == nil {
		t.Fatalf("got %+v, want the stream cut", ev)
	}
	waitFor(t, "unregistered", func() bool { return th.Watchers() == 0 })
}

func TestShutdown(t *testing.T) {
	th := newTestHub(t, Config{})
	commit(th.Hub, th.log, repeat("telemetry/d1/temp", 5)...)
	sse := []*sseStream{
		openSSE(t, th, "", nil),
		openSSE(t, th, "topic=presence/%23", nil),
		openSSE(t, th, "", http.Header{"Last-Event-Id": {th.log.ids.Format(2)}}),
	}
	ws := []*wsClient{dialWS(t, th, nil), dialWS(t, th, nil)}
	ws[0].subscribe("", "#")
	waitFor(t, "all watchers", func() bool { return th.Watchers() == 5 })

	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := th.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for i, s := range sse {
		for {
			_, err := s.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("sse %d: %v, want a clean end", i, err)
			}
		}
	}
	for i, c := range ws {
		if ce := c.waitClosed(); ce == nil || ce.Code != closeGoingAway {
			t.Errorf("ws %d closed with %+v, want 1001", i, ce)
		}
	}
	if n := th.Watchers(); n != 0 {
		t.Errorf("Watchers = %d after Shutdown", n)
	}
	if got := testutil.ToFloat64(th.m.WatchersConnected.WithLabelValues("sse")); got != 0 {
		t.Errorf("sse watchers gauge %v", got)
	}
	_, resp := dialSSE(t, th, "", nil)
	checkErrorResponse(t, resp, http.StatusServiceUnavailable, "unavailable")
	if err := th.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	th.Publish(th.log.add("telemetry/d1/temp")) // no watchers, no effect
}
