package devices

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/telehub/telehub/internal/memstat"
)

// BenchmarkMochiIdleClient measures what an idle client costs mochi-mqtt
// itself, without telehub's hook, listener or storage: a bare server with
// its allow-all hook, its own TCP listener and the per-client read buffer
// and outbound queue the embedded broker sets, and 1 000 clients in this
// process that hold raw sockets and run no goroutine, so every goroutine
// stack counted is the server's. It reports the stacks (exact) and the
// heap (which includes the clients' own sockets, about 0.3 KB each) per
// client, after the CONNACK and again after each client's PINGREQ was
// answered. The embedded broker cannot go below these stacks:
// docs/PERFORMANCE.md section (c) says why. It measures once whatever b.N
// is, and alone in its process (the runtime reuses the stacks of ended
// goroutines).
//
//	go test ./devices -run '^$' -bench MochiIdleClient -benchtime 1x
func BenchmarkMochiIdleClient(b *testing.B) {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = mqttWritesPending
	benchMochiIdle(b, mqtt.Options{ClientNetReadBufferSize: mqttReadBufferSize, Capabilities: caps}, 1000)
}

func benchMochiIdle(b *testing.B, opts mqtt.Options, n int) {
	opts.Logger = mqttDiscardLogger()
	server := mqtt.New(&opts)
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		b.Fatal(err)
	}
	ln := listeners.NewTCP(listeners.Config{ID: "bench", Address: "127.0.0.1:0"})
	if err := server.AddListener(ln); err != nil {
		b.Fatal(err)
	}
	if err := server.Serve(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = server.Close() }()
	heap0, stack0 := memstat.Live()
	g0 := runtime.NumGoroutine()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := range n {
		c, err := mochiIdleConnect(ln.Address(), fmt.Sprintf("idle-%05d", i))
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
	}
	for deadline := time.Now().Add(time.Minute); runtime.NumGoroutine() < g0+2*n; {
		if time.Now().After(deadline) {
			b.Fatalf("%d goroutines, want %d", runtime.NumGoroutine(), g0+2*n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	heap1, stack1 := memstat.Live()
	for _, c := range conns {
		if err := mochiPing(c); err != nil {
			b.Fatal(err)
		}
	}
	heap2, stack2 := memstat.Live()
	per := func(v1, v0 uint64) float64 { return (float64(v1) - float64(v0)) / float64(n) }
	b.ReportMetric(per(stack1, stack0), "stack-B/conn")
	b.ReportMetric(per(heap1, heap0), "heap-B/conn")
	b.ReportMetric(per(stack2, stack0), "stack-after-ping-B/conn")
	b.ReportMetric(per(heap2, heap0), "heap-after-ping-B/conn")
	b.ReportMetric(float64(runtime.NumGoroutine()-g0)/float64(n), "goroutines/conn")
}

// mochiIdleConnect sends an MQTT 3.1.1 CONNECT (clean session, keepalive
// 600 s) and reads the CONNACK.
func mochiIdleConnect(addr, id string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0x02, 0x58, 0, byte(len(id))}
	body = append(body, id...)
	if _, err := c.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		_ = c.Close()
		return nil, err
	}
	var ack [4]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		_ = c.Close()
		return nil, fmt.Errorf("connack % x: %v", ack, err)
	}
	return c, nil
}

// mochiPing sends a PINGREQ and reads the PINGRESP.
func mochiPing(c net.Conn) error {
	if _, err := c.Write([]byte{0xc0, 0}); err != nil {
		return err
	}
	var resp [2]byte
	if _, err := io.ReadFull(c, resp[:]); err != nil || resp[0] != 0xd0 {
		return fmt.Errorf("pingresp % x: %v", resp, err)
	}
	return nil
}
