package hub

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lxzan/gws"
)

// sseEvent is one event read from an SSE stream.
type sseEvent struct {
	ID, Event string
	Data      map[string]any
}

// sseReader reads an SSE stream with plain net/http.
type sseReader struct {
	resp   *http.Response
	events chan sseEvent
	done   chan struct{}
	cancel context.CancelFunc
}

func openSSE(t *testing.T, h *Hub, query url.Values, lastID string) *sseReader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+h.HTTPAddr()+"/v1/stream?"+query.Encode(), nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("open stream: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("open stream: status %d", resp.StatusCode)
	}
	r := &sseReader{resp: resp, events: make(chan sseEvent, 100000), done: make(chan struct{}), cancel: cancel}
	go r.read()
	t.Cleanup(r.close)
	return r
}

func (r *sseReader) read() {
	defer close(r.done)
	sc := bufio.NewScanner(r.resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.Event != "" || ev.Data != nil {
				r.events <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			ev.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.Event = line[7:]
		case strings.HasPrefix(line, "data: "):
			_ = json.Unmarshal([]byte(line[6:]), &ev.Data)
		}
	}
}

func (r *sseReader) close() {
	r.cancel()
	r.resp.Body.Close()
	<-r.done
}

func (r *sseReader) next(t *testing.T) sseEvent {
	t.Helper()
	select {
	case e := <-r.events:
		return e
	case <-r.done:
		t.Fatal("stream ended")
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return sseEvent{}
}

func TestSSEDeliversMatchingEventsInOrder(t *testing.T) {
	h := startHub(t, testConfig(t))
	temps := openSSE(t, h, url.Values{"topic": {"telemetry/+/temp"}}, "")
	pump := openSSE(t, h, url.Values{"topic": {"telemetry/pump-7/#", "presence/pump-7"}}, "")

	d := dialDevice(t, h, "pump-7")
	e := dialDevice(t, h, "fan-1")
	for seq := 1; seq <= 5; seq++ {
		d.send(t, fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"temp":%d,"rpm":%d}}`, seq, seq, seq*10))
		d.next(t)
		e.send(t, fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"temp":%d,"rpm":1}}`, seq, 100+seq))
		e.next(t)
	}
	var last string
	for i := 0; i < 10; i++ {
		ev := temps.next(t)
		if ev.Event != "telemetry" || ev.Data["metric"] != "temp" || ev.ID <= last {
			t.Fatalf("temps stream event %d: %+v (last id %s)", i, ev, last)
		}
		last = ev.ID
	}
	// pump-7's stream: its presence (connect) first, then its 10 readings.
	if ev := pump.next(t); ev.Event != "presence" || ev.Data["online"] != true || ev.Data["reason"] != "connect" {
		t.Fatalf("want pump-7 presence first, got %+v", ev)
	}
	for i := 0; i < 10; i++ {
		if ev := pump.next(t); ev.Data["device"] != "pump-7" || ev.Event != "telemetry" {
			t.Fatalf("pump stream got %+v", ev)
		}
	}
	select {
	case ev := <-temps.events:
		t.Fatalf("unexpected extra event %+v", ev)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestSSEResumeWhileProducing(t *testing.T) {
	h := startHub(t, testConfig(t))
	d := dialDevice(t, h, "prod")
	// The first watcher is registered before the producer starts, so it
	// owes nothing from before its time.
	q := url.Values{"topic": {"telemetry/prod/n"}}
	w := openSSE(t, h, q, "")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	sent := 0
	wg.Add(1)
	go func() { // the producer never pauses
		defer wg.Done()
		for seq := 1; ; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			if d.conn.WriteString(fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"n":%d}}`, seq, seq)) != nil {
				return
			}
			sent = seq
			time.Sleep(time.Millisecond)
		}
	}()
	go func() { // drain acks until the device closes
		for {
			select {
			case <-d.in:
			case <-d.done:
				return
			}
		}
	}()

	seen := map[float64]int{}
	lastID := ""
	for round := 0; round < 4; round++ {
		if round > 0 {
			w = openSSE(t, h, q, lastID)
		}
		for i := 0; i < 50; i++ {
			ev := w.next(t)
			seen[ev.Data["device_seq"].(float64)]++
			lastID = ev.ID
		}
		w.close() // killed mid-stream; the producer goes on
		time.Sleep(30 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	// Read the rest after the producer stopped.
	w = openSSE(t, h, q, lastID)
	want := float64(len(events(t, h, "telemetry/prod/n")))
	for float64(len(seen)) < want {
		ev := w.next(t)
		seen[ev.Data["device_seq"].(float64)]++
	}
	for seq := 1.0; seq <= want; seq++ {
		if seen[seq] != 1 {
			t.Errorf("seq %v seen %d times", seq, seen[seq])
		}
	}
	t.Logf("producer sent %d, watcher saw %d across 5 connections", sent, len(seen))
}

func TestSSEResetWhenIDNotRetained(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxEvents = 10
	h := startHub(t, cfg)
	d := dialDevice(t, h, "ret")
	var first string
	for seq := 1; seq <= 30; seq++ {
		d.send(t, fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"n":%d}}`, seq, seq))
		d.next(t)
		if seq == 1 {
			first = events(t, h, "telemetry/ret/n")[0].ID
		}
	}
	waitFor(t, "retention to trim", func() bool { return len(events(t, h, "#")) <= 10 })
	oldest := events(t, h, "#")[0].ID

	for name, id := range map[string]string{"expired": first, "foreign": "ffffffffffff-0000000000000001", "malformed": "nonsense"} {
		t.Run(name, func(t *testing.T) {
			w := openSSE(t, h, url.Values{"topic": {"#"}}, id)
			ev := w.next(t)
			if ev.Event != "reset" || ev.ID != "" || ev.Data["oldest"] != oldest {
				t.Fatalf("want reset naming oldest %s first, got %+v", oldest, ev)
			}
			if ev := w.next(t); ev.ID != oldest {
				t.Fatalf("replay should start at the oldest retained event %s, got %+v", oldest, ev)
			}
		})
	}
}

// wsWatcher is a watcher on /v1/stream/ws with a real gws client.
type wsWatcher struct {
	gws.BuiltinEventHandler
	conn *gws.Conn
	in   chan map[string]any
	done chan struct{}
}

func (w *wsWatcher) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	var v map[string]any
	_ = json.Unmarshal(m.Bytes(), &v)
	w.in <- v
}

func dialWatcher(t *testing.T, h *Hub) *wsWatcher {
	t.Helper()
	return dialWatcherWith(t, h, nil)
}

// dialWatcherWith is dialWatcher with request headers.
func dialWatcherWith(t *testing.T, h *Hub, header http.Header) *wsWatcher {
	t.Helper()
	w := &wsWatcher{in: make(chan map[string]any, 10000), done: make(chan struct{})}
	conn, resp, err := gws.NewClient(w, &gws.ClientOption{Addr: "ws://" + h.HTTPAddr() + "/v1/stream/ws", RequestHeader: header})
	if err != nil {
		t.Fatalf("dial watcher: %v", err)
	}
	_ = resp.Body.Close()
	w.conn = conn
	go func() { defer close(w.done); conn.ReadLoop() }()
	t.Cleanup(func() { _ = conn.WriteClose(1000, nil); <-w.done })
	return w
}

func (w *wsWatcher) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case m := <-w.in:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
	}
	return nil
}

func TestWebSocketWatcher(t *testing.T) {
	h := startHub(t, testConfig(t))
	w := dialWatcher(t, h)
	_ = w.conn.WriteString(`{"op":"subscribe","topics":["telemetry/+/temp"]}`)
	if m := w.next(t); m["op"] != "subscribed" {
		t.Fatalf("want subscribed, got %v", m)
	}
	_ = w.conn.WriteString(`{"op":"subscribe","topics":["telemetry/#/x"]}`)
	if m := w.next(t); m["op"] != "error" {
		t.Fatalf("want error for a bad filter, got %v", m)
	}
	d := dialDevice(t, h, "wsw")
	d.send(t, `{"type":"telemetry","seq":1,"values":{"temp":5,"hum":6}}`)
	d.next(t)
	m := w.next(t)
	data, _ := m["data"].(map[string]any)
	if m["op"] != "event" || m["event"] != "telemetry" || data["metric"] != "temp" || m["id"] == "" {
		t.Fatalf("want the temp event, got %v", m)
	}
	firstID := m["id"].(string)
	_ = w.conn.WriteString(`{"op":"unsubscribe","topics":["telemetry/+/temp"]}`)
	if m := w.next(t); m["op"] != "unsubscribed" {
		t.Fatalf("want unsubscribed, got %v", m)
	}
	d.send(t, `{"type":"telemetry","seq":2,"values":{"temp":7}}`)
	d.next(t)

	// A second watcher resumes after the first event and gets the rest.
	w2 := dialWatcher(t, h)
	_ = w2.conn.WriteString(`{"op":"subscribe","topics":["telemetry/wsw/temp"],"last_event_id":"` + firstID + `"}`)
	var got []map[string]any
	for len(got) < 2 {
		got = append(got, w2.next(t))
	}
	ops := got[0]["op"].(string) + "," + got[1]["op"].(string)
	if !strings.Contains(ops, "subscribed") || !strings.Contains(ops, "event") {
		t.Fatalf("resumed watcher got %v", got)
	}
	select {
	case m := <-w.in:
		t.Fatalf("unsubscribed watcher still got %v", m)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestCurlStreamIsNotBuffered(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		requireExternal(t, "curl")
		return
	}
	h := startHub(t, testConfig(t))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, curl, "-sN", "http://"+h.HTTPAddr()+"/v1/stream?topic=telemetry/curl/%23")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	if l := <-lines; l != "retry: 2000" {
		t.Fatalf("first line %q", l)
	}
	d := dialDevice(t, h, "curl")
	d.send(t, `{"type":"telemetry","seq":1,"values":{"temp":1}}`)
	// One small event must reach curl at once, not sit in a buffer.
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("curl ended")
			}
			if strings.HasPrefix(l, "data: ") && strings.Contains(l, `"telemetry/curl/temp"`) {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the event did not reach curl")
		}
	}
}
