package hub

import (
	"fmt"
	"net"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/lxzan/gws"
)

// attackHeapBound is the live heap the hub (and this test) may hold while
// an attack runs. An idle test hub holds a few MB.
const attackHeapBound = 256 << 20

// liveHeap is the live heap after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// flooder is a WebSocket device that sends and never reads its acks.
func flooder(t *testing.T, h *Hub, id string) *gws.Conn {
	t.Helper()
	conn, resp, err := gws.NewClient(new(gws.BuiltinEventHandler), &gws.ClientOption{Addr: "ws://" + h.HTTPAddr() + "/v1/devices/" + id + "/ws"})
	if err != nil {
		t.Fatalf("dial %s: %v", id, err)
	}
	_ = resp.Body.Close()
	if tc, ok := conn.NetConn().(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4 << 10) // its unread acks fill the socket soon
	}
	t.Cleanup(func() { _ = conn.NetConn().Close() })
	return conn // no ReadLoop: its acks stay unread
}

// nextWhileStoring is d.next for a hub under a flood: the answer may wait
// behind the flood's queued writes, up to MaxInflight of each flooder, two
// full batches, and on a loaded machine one such commit took up to 10 s.
// It fails only when the hub stored nothing for 30 s or after 2 minutes.
func nextWhileStoring(t *testing.T, h *Hub, d *wsDevice) map[string]any {
	t.Helper()
	start := time.Now()
	last, moved := h.store.LastID(), start
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case m := <-d.in:
			return m
		case err := <-d.closed:
			t.Fatalf("connection closed while waiting for a message: %v", err)
		case now := <-tick.C:
			if id := h.store.LastID(); id != last {
				last, moved = id, now
			}
			if now.Sub(moved) > 30*time.Second || now.Sub(start) > 2*time.Minute {
				t.Fatalf("no message from the hub after %v, %v of them storing nothing",
					now.Sub(start).Round(time.Millisecond), now.Sub(moved).Round(time.Millisecond))
			}
		}
	}
}

// Devices that flood and never read their acks stop being read: the hub's
// memory stays bounded and a well-behaved device keeps getting acks.
func TestAttackFloodingDevicesThatNeverReadAcks(t *testing.T) {
	if testing.Short() {
		t.Skip("an attack")
	}
	h := startHub(t, testConfig(t))
	const devices, frames = 20, 3000
	var wg sync.WaitGroup
	for i := range devices {
		conn := flooder(t, h, fmt.Sprintf("flood-%d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 1; seq <= frames; seq++ {
				// The deadline only ends this sender once the hub stops
				// reading it; it asserts nothing.
				_ = conn.NetConn().SetWriteDeadline(time.Now().Add(2 * time.Second))
				if conn.WriteString(fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"temp":%d.5,"pad":"%0200d"}}`, seq, seq, 0)) != nil {
					return
				}
			}
		}()
	}
	good := dialDevice(t, h, "good")
	var peak uint64
	for seq := 1; seq <= 200; seq++ {
		good.send(t, fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"temp":1}}`, seq))
		if m := nextWhileStoring(t, h, good); m["type"] != "ack" || m["seq"] != float64(seq) {
			t.Fatalf("well-behaved device got %v for seq %d, want its ack", m, seq)
		}
		if seq%20 == 0 {
			peak = max(peak, liveHeap())
		}
	}
	wg.Wait()
	peak = max(peak, liveHeap())
	t.Logf("live heap peak during the flood: %d MiB", peak>>20)
	if peak > attackHeapBound {
		t.Fatalf("live heap %d MiB during the flood, bound %d MiB", peak>>20, attackHeapBound>>20)
	}
}

// Connections past the caps are refused before the upgrade, the probes
// keep answering, and a well-behaved device connected before keeps
// getting acks.
func TestAttackConnectionsPastTheCap(t *testing.T) {
	if testing.Short() {
		t.Skip("an attack")
	}
	cfg := testConfig(t)
	cfg.MaxConnections = 100
	cfg.MaxConnectionsPerAddress = 0
	h := startHub(t, cfg)
	good := dialDevice(t, h, "good")
	var conns []*gws.Conn
	refusedN := 0
	for i := range 300 {
		conn, resp, err := gws.NewClient(new(gws.BuiltinEventHandler), &gws.ClientOption{Addr: fmt.Sprintf("ws://%s/v1/devices/atk-%d/ws", h.HTTPAddr(), i)})
		if err != nil {
			if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("connection %d: %v (%v), want 503 past the cap", i, err, resp)
			}
			_ = resp.Body.Close()
			refusedN++
			continue
		}
		_ = resp.Body.Close()
		conns = append(conns, conn)
		t.Cleanup(func() { _ = conn.NetConn().Close() })
	}
	if len(conns) != 99 || refusedN != 201 {
		t.Fatalf("%d admitted, %d refused; want 99 (the cap less the good device) and 201", len(conns), refusedN)
	}
	resp, err := http.Get("http://" + h.HTTPAddr() + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz at the cap: %v %v", resp, err)
	}
	resp.Body.Close()
	good.send(t, `{"type":"telemetry","seq":1,"values":{"temp":1}}`)
	if m := good.next(t); m["type"] != "ack" {
		t.Fatalf("well-behaved device got %v, want an ack", m)
	}
	if heap := liveHeap(); heap > attackHeapBound {
		t.Fatalf("live heap %d MiB at the cap, bound %d MiB", heap>>20, attackHeapBound>>20)
	}
}
