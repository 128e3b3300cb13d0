package stream

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lxzan/gws"

	"github.com/telehub/telehub/storage"
)

// BenchmarkFanout measures Publish: batches of 64 records, each matching
// every watcher or none, with in-memory watchers whose backlogs the
// benchmark empties every 4 batches (as their writers would).
func BenchmarkFanout(b *testing.B) {
	const batch = 64
	for _, subs := range []int{10, 1000, 10000} {
		for _, match := range []bool{true, false} {
			b.Run(fmt.Sprintf("subs=%d/match=%v", subs, match), func(b *testing.B) {
				l := newFakeLog("a1b2c3d4e5f6")
				h, err := New(Config{Log: l, QueueLimit: 1 << 10})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = h.Shutdown(context.Background()) })
				ws := make([]*watcher, subs)
				for i := range ws {
					filter := "telemetry/+/temp"
					if !match {
						filter = fmt.Sprintf("telemetry/dev%d/temp", i)
					}
					f := []format{formatSSE, formatWS}[i%2]
					ws[i], _ = startMemNoWriter(b, h, f, filter)
				}
				recs := make([]storage.Record, batch)
				for i := range recs {
					recs[i] = storage.Record{Kind: 1, Topic: "telemetry/pump-7/temp", Time: time.Now(),
						Data: []byte(`{"topic":"telemetry/pump-7/temp","device":"pump-7","metric":"temp","value":21.5,"ts":"2026-11-25T10:00:00.123Z"}`)}
				}
				var id uint64
				spare := make([]*frame, 0, 4*batch)
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					for i := range recs {
						id++
						recs[i].ID = id
					}
					h.Publish(recs)
					if n++; match && n%4 == 0 {
						for _, w := range ws {
							got, _ := w.take(spare)
							clear(got)
							spare = got[:0]
						}
					}
				}
				events := float64(b.N * batch)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
				if match {
					b.ReportMetric(events*float64(subs)/b.Elapsed().Seconds(), "deliveries/s")
				}
			})
		}
	}
}

// BenchmarkSSEDeliveries measures end-to-end deliveries over loopback to
// 8 watchers of each transport reading everything; the producer keeps at
// most a window of events ahead of the slowest watcher.
func BenchmarkSSEDeliveries(b *testing.B) {
	benchDeliveries(b, transportSSE)
}

// BenchmarkWSDeliveries is BenchmarkSSEDeliveries over WebSocket.
func BenchmarkWSDeliveries(b *testing.B) {
	benchDeliveries(b, transportWS)
}

func benchDeliveries(b *testing.B, transport string) {
	const watchers, batch, window = 8, 256, 16384
	var wg sync.WaitGroup
	b.Cleanup(wg.Wait) // after the hub's Shutdown has ended the streams
	th := newTestHub(b, Config{QueueLimit: 1 << 16})
	counts := make([]*atomic.Int64, watchers)
	for i := range counts {
		counts[i] = new(atomic.Int64)
		wg.Add(1)
		if transport == transportSSE {
			go countSSE(b, th, counts[i], &wg)
		} else {
			go countWS(b, th, counts[i], &wg)
		}
	}
	waitFor(b, "watchers", func() bool { return th.Watchers() == watchers })
	slowest := func() int64 {
		m := counts[0].Load()
		for _, c := range counts {
			m = min(m, c.Load())
		}
		return m
	}
	topics := repeat("telemetry/pump-7/temp", batch)
	b.ResetTimer()
	sent := int64(0)
	for sent < int64(b.N) {
		for sent-slowest() > window {
			runtime.Gosched()
		}
		n := min(batch, b.N-int(sent))
		commit(th.Hub, th.log, topics[:n]...)
		sent += int64(n)
	}
	for slowest() < sent {
		runtime.Gosched()
	}
	b.ReportMetric(float64(b.N*watchers)/b.Elapsed().Seconds(), "deliveries/s")
}

// countSSE reads a stream of "#" and counts its events until it ends.
func countSSE(b *testing.B, th *testHub, n *atomic.Int64, wg *sync.WaitGroup) {
	defer wg.Done()
	resp, err := http.Get(th.srv.URL + "/v1/stream")
	if err != nil {
		b.Error(err)
		return
	}
	defer resp.Body.Close()
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		if bytes.HasPrefix(line, []byte("id: ")) {
			n.Add(1)
		}
	}
}

// countingClient counts the event messages of a WebSocket watcher.
type countingClient struct {
	gws.BuiltinEventHandler
	n *atomic.Int64
}

func (c countingClient) OnMessage(_ *gws.Conn, m *gws.Message) {
	if bytes.HasPrefix(m.Bytes(), []byte(`{"op":"event"`)) {
		c.n.Add(1)
	}
	_ = m.Close()
}

// countWS subscribes to "#" and counts events until the connection ends.
func countWS(b *testing.B, th *testHub, n *atomic.Int64, wg *sync.WaitGroup) {
	defer wg.Done()
	conn, resp, err := gws.NewClient(countingClient{n: n}, &gws.ClientOption{
		Addr: "ws" + th.srv.URL[len("http"):] + "/v1/stream/ws", ReadBufferSize: 64 << 10,
	})
	if err != nil {
		b.Error(err)
		return
	}
	_ = resp.Body.Close()
	_ = conn.WriteString(`{"op":"subscribe","topics":["#"]}`)
	conn.ReadLoop()
}

// BenchmarkIdleWatcherMemory reports the heap and stack memory that 1000
// idle watchers of each transport add, per watcher. The client ends are
// bare TCP connections in the same process, counted too (a few hundred
// bytes each). Run with -benchtime=1x.
func BenchmarkIdleWatcherMemory(b *testing.B) {
	for _, transport := range []string{transportSSE, transportWS} {
		b.Run(transport, func(b *testing.B) {
			const n = 1000
			for b.Loop() {
				th := newTestHub(b, Config{})
				before := memInUse()
				conns := make([]net.Conn, n)
				for i := range conns {
					conns[i] = idleClient(b, th, transport)
				}
				waitFor(b, "watchers", func() bool { return th.Watchers() == n })
				after := memInUse()
				b.ReportMetric(float64(after-before)/n, "B/watcher")
				for _, c := range conns {
					_ = c.Close()
				}
				waitFor(b, "watchers gone", func() bool { return th.Watchers() == 0 })
			}
		})
	}
}

// memInUse returns heap and stack bytes in use after a GC.
func memInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc + ms.StackInuse
}

// idleClient opens a watcher on a bare TCP connection (subscribed to "#"
// for WebSocket) and reads its answer.
func idleClient(b *testing.B, th *testHub, transport string) net.Conn {
	b.Helper()
	conn, err := net.Dial("tcp", th.srv.Listener.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	addr := th.srv.Listener.Addr()
	if transport == transportSSE {
		fmt.Fprintf(conn, "GET /v1/stream HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		readPast(b, conn, "retry: 2000\n\n")
		return conn
	}
	fmt.Fprintf(conn, "GET /v1/stream/ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
	readPast(b, conn, "\r\n\r\n")
	_, _ = conn.Write(maskedText(`{"op":"subscribe","topics":["#"]}`))
	readPast(b, conn, `"topics":["#"]}`)
	return conn
}

// readPast reads conn until marker went by.
func readPast(b *testing.B, conn net.Conn, marker string) {
	b.Helper()
	var seen []byte
	buf := make([]byte, 256)
	_ = conn.SetReadDeadline(time.Now().Add(guard))
	for !bytes.Contains(seen, []byte(marker)) {
		k, err := conn.Read(buf)
		if err != nil {
			b.Fatalf("read: %v", err)
		}
		seen = append(seen, buf[:k]...)
	}
	_ = conn.SetReadDeadline(time.Time{})
}
