package hub

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telehub/telehub/internal/memstat"
)

// BenchmarkIdleConnMemory opens many idle connections of each kind (MQTT
// devices on the embedded broker, SSE watchers, WebSocket devices and
// watchers; the "-used" MQTT and WebSocket devices first send one reading
// and one ping and get their answers, as a device idle between readings
// has) against an in-process hub and reports what each costs the hub:
// live heap plus goroutine stacks after a GC, per connection (B/conn), and
// goroutines per connection. The clients run in a child process, so their
// own memory is not counted and both sides get their own descriptors.
//
//	go test ./internal/hub -run '^$' -bench IdleConnMemory -benchtime 1x -idle-conns 2000
//
// It measures once whatever b.N is: run it with -benchtime 1x. Each kind
// is measured in a process of its own (benchIdleAlone).
func BenchmarkIdleConnMemory(b *testing.B) {
	for _, kind := range []string{"mqtt", "mqtt-used", "mqtt-commands", "sse", "ws", "ws-used", "wswatch"} {
		b.Run(kind, func(b *testing.B) {
			if os.Getenv(aloneEnv) != "" {
				benchIdle(b, kind, *idleConns)
				return
			}
			benchIdleAlone(b, kind, *idleConns)
		})
	}
}

// aloneEnv, when set, makes BenchmarkIdleConnMemory measure in its own
// process (benchIdleAlone starts it).
const aloneEnv = "TELEHUB_TEST_IDLE_ALONE"

// benchIdleAlone measures kind in a child process and reports the child's
// figures. Measured one after another in one process, the kinds disturb
// each other: the runtime keeps the stacks of the goroutines that ended
// for new ones (which then add nothing to the stacks counted) and starts
// new goroutines with stacks sized by the average it saw at the last GC
// (which the earlier kind set). A WebSocket device measured after the
// others counted about 0.9 KB less than alone.
func benchIdleAlone(b *testing.B, kind string, n int) {
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^BenchmarkIdleConnMemory$/^"+kind+"$",
		"-test.benchtime=1x", "-idle-conns="+strconv.Itoa(n))
	cmd.Env = append(os.Environ(), aloneEnv+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("%s measured alone: %v\n%s", kind, err, out)
	}
	metrics, err := benchMetrics(out, "BenchmarkIdleConnMemory/"+kind+"-")
	if err != nil {
		b.Fatalf("%s measured alone: %v\n%s", kind, err, out)
	}
	for unit, v := range metrics {
		b.ReportMetric(v, unit)
	}
}

// benchMetrics returns the metrics other than ns/op of the benchmark line
// of out that starts with prefix.
func benchMetrics(out []byte, prefix string) (map[string]float64, error) {
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], prefix) {
			continue
		}
		m := make(map[string]float64)
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("metric %q: %w", f[i], err)
			}
			if f[i+1] != "ns/op" {
				m[f[i+1]] = v
			}
		}
		return m, nil
	}
	return nil, fmt.Errorf("no line %q", prefix)
}

func benchIdle(b *testing.B, kind string, n int) {
	cfg := config4Bench(b, kind, n)
	h, err := New(cfg, benchLogger())
	if err != nil {
		b.Fatalf("hub.New: %v", err)
	}
	if err := h.Start(b.Context()); err != nil {
		b.Fatalf("hub.Start: %v", err)
	}
	defer func() {
		ctx, cancel := contextTimeout(20 * time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			b.Errorf("hub.Shutdown: %v", err)
		}
	}()
	for range b.N {
		heap0, stack0 := memstat.Live()
		g0 := runtime.NumGoroutine()
		id0 := h.store.LastID()
		cl := startIdleClients(b, h, kind, n)
		// Every kind runs at least one goroutine per connection in the hub.
		waitForBench(b, "server goroutines", func() bool { return runtime.NumGoroutine() >= g0+n })
		// The events the connections caused are stored before the count:
		// queued ones would be counted as the connections' memory.
		want := id0 + uint64(idleEvents[kind]*n)
		waitForBench(b, "events stored", func() bool { return h.store.LastID() >= want })
		heap1, stack1 := memstat.Live()
		g1 := runtime.NumGoroutine()
		cl.stop(b)
		b.ReportMetric(float64(heap1+stack1-heap0-stack0)/float64(n), "B/conn")
		b.ReportMetric(float64(heap1-heap0)/float64(n), "heap-B/conn")
		b.ReportMetric(float64(stack1-stack0)/float64(n), "stack-B/conn")
		b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/conn")
		waitForBench(b, "connections closed", func() bool { return runtime.NumGoroutine() <= g0+n/100 })
	}
}

// idleEvents is how many events each connection of a kind stores: a
// WebSocket device's presence (online), a used device's reading too (an
// MQTT device's presence begins with its first publish).
var idleEvents = map[string]int{"ws": 1, "ws-used": 2, "mqtt-used": 2, "mqtt-commands": 2}

// idleClients is the child process holding the connections.
type idleClients struct {
	cmd   *exec.Cmd
	stdin interface{ Close() error }
}

func startIdleClients(b *testing.B, h *Hub, kind string, n int) *idleClients {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), idleEnv+"="+strings.Join([]string{kind, strconv.Itoa(n), h.HTTPAddr(), h.MQTTAddr()}, " "))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	cl := &idleClients{cmd: cmd, stdin: in}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "OPEN ") {
		cl.stop(b)
		b.Fatalf("idle clients: %q, %v", line, err)
	}
	return cl
}

// stop closes the child's stdin, which makes it exit and drop every
// connection.
func (c *idleClients) stop(b *testing.B) {
	b.Helper()
	_ = c.stdin.Close()
	if err := c.cmd.Wait(); err != nil {
		b.Errorf("idle clients: %v", err)
	}
}

func waitForBench(b *testing.B, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runIdleClients is the child: it opens the connections that spec ("kind
// n httpAddr mqttAddr") names, prints "OPEN n", and holds them until its
// stdin closes.
func runIdleClients(spec string) int {
	f := strings.Fields(spec)
	if len(f) != 4 {
		fmt.Fprintf(os.Stderr, "bad %s: %q\n", idleEnv, spec)
		return 2
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	conns, err := openIdle(f[0], n, f[2], f[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("OPEN %d\n", len(conns))
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	for _, c := range conns {
		_ = c.Close()
	}
	return 0
}
