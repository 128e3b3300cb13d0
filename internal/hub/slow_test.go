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

func TestSlowWatcherIsDisconnectedAndOthersKeepUp(t *testing.T) {
	const (
		healthy = 100
		frames  = 100
		metrics = 20 // events per frame
	)
	cfg := testConfig(t)
	cfg.WatcherQueue = 64
	h := startHub(t, cfg)

	slow := stalledWatcher(t, h, "telemetry/#")
	var readers []*sseReader
	for range healthy {
		readers = append(readers, openSSE(t, h, url.Values{"topic": {"telemetry/#"}}, ""))
	}
	// The healthy watchers each count their events concurrently.
	var wg sync.WaitGroup
	counts := make([]int, healthy)
	for i, r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for counts[i] < frames*metrics {
				select {
				case <-r.events:
					counts[i]++
				case <-time.After(30 * time.Second):
					return
				}
			}
		}()
	}

	d := dialDevice(t, h, "burst")
	var values strings.Builder
	for m := range metrics {
		if m > 0 {
			values.WriteByte(',')
		}
		fmt.Fprintf(&values, `"m%d":%d`, m, m)
	}
	for seq := 1; seq <= frames; seq++ {
		d.send(t, fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{%s}}`, seq, values.String()))
	}
	// Ingest is not held back by the stalled watcher: every frame is acked.
	for seq := 1; seq <= frames; seq++ {
		if m := d.next(t); m["type"] != "ack" {
			t.Fatalf("frame %d: %v", seq, m)
		}
	}
	wg.Wait()
	for i, n := range counts {
		if n != frames*metrics {
			t.Fatalf("healthy watcher %d got %d of %d events", i, n, frames*metrics)
		}
	}

	// The stalled watcher was cut off: reading what it has ends in EOF,
	// and it resumes from its last id without loss.
	_ = slow.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
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
	if lastID == "" || got >= frames*metrics {
		t.Fatalf("the stalled watcher received %d of %d events: it was never cut off mid-stream", got, frames*metrics)
	}
	r := openSSE(t, h, url.Values{"topic": {"telemetry/#"}}, lastID)
	for i := got; i < frames*metrics; i++ {
		if ev := r.next(t); ev.Event != "telemetry" {
			t.Fatalf("resume: %+v", ev)
		}
	}
	t.Logf("stalled watcher got %d events before being cut off, resumed the other %d", got, frames*metrics-got)
}
