package stream

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// An HTTP/1.1 watcher's connection is taken over from net/http: the hub
// writes the head and a chunked body itself, one chunk per write, and ends
// with the last chunk on shutdown.
func TestSSEOwnConnectionWire(t *testing.T) {
	th := newTestHub(t, Config{})
	conn, err := net.Dial("tcp", th.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(guard))
	if _, err := io.WriteString(conn, "GET /v1/stream HTTP/1.1\r\nHost: hub\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	head := readHead(t, r)
	for _, want := range []string{"HTTP/1.1 200 OK\r\n", "Content-Type: text/event-stream\r\n",
		"Cache-Control: no-cache\r\n", "X-Accel-Buffering: no\r\n", "Transfer-Encoding: chunked\r\n",
		"Connection: close\r\n", "Date: "} {
		if !strings.Contains(head, want) {
			t.Errorf("head %q lacks %q", head, want)
		}
	}
	readExact(t, r, "d\r\nretry: 2000\n\n\r\n")
	waitFor(t, "registration", func() bool { return th.Watchers() == 1 })

	rec := commit(th.Hub, th.log, "telemetry/d1/temp")[0]
	ev := fmt.Sprintf("id: %s\nevent: telemetry\ndata: %s\n\n", th.log.ids.Format(rec.ID), rec.Data)
	readExact(t, r, fmt.Sprintf("%x\r\n%s\r\n", len(ev), ev))

	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := th.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	readExact(t, r, "0\r\n\r\n")
	if b, err := r.ReadByte(); err != io.EOF {
		t.Errorf("after the last chunk: %q, %v; want EOF", b, err)
	}
}

// readHead reads the response head up to the blank line.
func readHead(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var head strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("head %q: %v", head.String(), err)
		}
		if line == "\r\n" {
			return head.String()
		}
		head.WriteString(line)
	}
}

// Over HTTP/2 the connection cannot be taken over: net/http keeps the
// stream, with the same headers and events.
func TestSSEOverHTTP2(t *testing.T) {
	h, err := New(Config{Log: newFakeLog("hubA")})
	if err != nil {
		t.Fatal(err)
	}
	fl := h.cfg.Log.(*fakeLog)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(h.ServeSSE))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/stream", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("proto %s, content type %q", resp.Proto, resp.Header.Get("Content-Type"))
	}
	r := bufio.NewReader(resp.Body)
	readExact(t, r, "retry: 2000\n\n")
	waitFor(t, "registration", func() bool { return h.Watchers() == 1 })
	rec := commit(h, fl, "telemetry/d1/temp")[0]
	readExact(t, r, fmt.Sprintf("id: %s\nevent: telemetry\ndata: %s\n\n", fl.ids.Format(rec.ID), rec.Data))
}

// A watcher whose client goes away is unregistered without a write: its
// connection's reader notices.
func TestSSEOwnConnectionClientGone(t *testing.T) {
	th := newTestHub(t, Config{})
	conn, err := net.Dial("tcp", th.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(guard))
	if _, err := io.WriteString(conn, "GET /v1/stream HTTP/1.1\r\nHost: hub\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	readHead(t, r)
	readExact(t, r, "d\r\nretry: 2000\n\n\r\n")
	waitFor(t, "registration", func() bool { return th.Watchers() == 1 })
	_ = conn.Close()
	waitFor(t, "unregistration", func() bool { return th.Watchers() == 0 })
}
