package hub

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stalledWatcher opens an SSE stream on a socket with a tiny receive buffer
// and then does not read, like a watcher behind a dead or congested link.
func stalledWatcher(t *testing.T, h *Hub, filter string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.Dial("tcp", h.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET /v1/stream?topic=%s HTTP/1.1\r\nHost: x\r\n\r\n", url.QueryEscape(filter))
	return conn
}

// countEvents reads an SSE stream until it has seen want events or the
// guard timeout passes, without parsing them; it returns the count.
func countEvents(t *testing.T, h *Hub, filter string, want int, ready chan<- struct{}) int {
	req, _ := http.NewRequest(http.MethodGet, "http://"+h.HTTPAddr()+"/v1/stream?topic="+url.QueryEscape(filter), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		close(ready)
		return 0
	}
	defer resp.Body.Close()
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	if line, err := br.ReadString('\n'); err != nil || line != "retry: 2000\n" {
		t.Errorf("first line %q: %v", line, err)
	}
	close(ready)
	timer := time.AfterFunc(60*time.Second, func() { resp.Body.Close() })
	defer timer.Stop()
	n := 0
	for n < want {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			break
		}
		if len(line) > 4 && string(line[:4]) == "id: " {
			n++
		}
	}
	return n
}

func TestSlowWatcherIsDisconnectedAndOthersKeepUp(t *testing.T) {
	const (
		healthy = 100
		frames  = 150
		metrics = 20 // events per frame, about 1.6 KB each
		total   = frames * metrics
	)
	cfg := testConfig(t)
	cfg.WatcherQueue = 256
	h := startHub(t, cfg)

	slow := stalledWatcher(t, h, "telemetry/#")
	var wg sync.WaitGroup
	counts := make([]int, healthy)
	for i := range healthy {
		ready := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			counts[i] = countEvents(t, h, "telemetry/#", total, ready)
		}()
		<-ready
	}

	d := dialDevice(t, h, "burst")
	blob := strings.Repeat("x", 1500)
	var values strings.Builder
	for m := range metrics {
		if m > 0 {
			values.WriteByte(',')
		}
		fmt.Fprintf(&values, `"m%d":"%s"`, m, blob)
	}
	// A steady producer, one frame per commit: healthy watchers keep up
	// with it. Ingest is not held back by the stalled watcher: every frame
	// is acked.
	for seq := 1; seq <= frames; seq++ {
		d.send(t, fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{%s}}`, seq, values.String()))
		if m := d.next(t); m["type"] != "ack" {
			t.Fatalf("frame %d: %v", seq, m)
		}
	}
	wg.Wait()
	for i, n := range counts {
		if n != total {
			t.Fatalf("healthy watcher %d got %d of %d events", i, n, total)
		}
	}

	// The stalled watcher was cut off: reading what it has ends in EOF,
	// and it resumes from its last id without loss.
	_ = slow.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	lastID, got := "", 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			break
		}
		if strings.HasPrefix(line, "id: ") {
			lastID = strings.TrimSpace(line[4:])
			got++
		}
	}
	if lastID == "" || got >= total {
		t.Fatalf("the stalled watcher received %d of %d events: it was never cut off mid-stream", got, total)
	}
	r := openSSE(t, h, url.Values{"topic": {"telemetry/#"}}, lastID)
	for i := got; i < total; i++ {
		if ev := r.next(t); ev.Event != "telemetry" {
			t.Fatalf("resume: %+v", ev)
		}
	}
	t.Logf("stalled watcher got %d events before being cut off, resumed the other %d", got, total-got)
}
