package hub

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lxzan/gws"
)

var (
	cmdDevices  = flag.Int("cmd-devices", 1000, "connected WebSocket devices for BenchmarkCommandRoundTrip")
	cmdRate     = flag.Int("cmd-rate", 2000, "commands created per second through REST for BenchmarkCommandRoundTrip")
	cmdDuration = flag.Duration("cmd-duration", 15*time.Second, "how long BenchmarkCommandRoundTrip creates commands")
	cmdWorkers  = flag.Int("cmd-workers", 128, "concurrent REST requests (and connections) creating commands in BenchmarkCommandRoundTrip")
)

// BenchmarkCommandRoundTrip measures commands end to end against a hub in
// a child process (fsync on, default flags): -cmd-devices WebSocket
// devices stay connected and answer every command frame at once with a
// command_ack and a command_result; commands are created through REST at
// -cmd-rate per second, round robin over the devices, for -cmd-duration,
// by -cmd-workers concurrent requests.
// A watcher on commands/# (SSE) notes when each command's delivered and
// succeeded events arrive. Latencies run from the command's scheduled
// creation time, so a load tool that falls behind shows as latency too.
// The first second is warm-up and not counted.
//
//	go test ./internal/hub -run '^$' -bench CommandRoundTrip -benchtime 1x
func BenchmarkCommandRoundTrip(b *testing.B) {
	if testing.Short() {
		b.Skip("starts a hub as a child process")
	}
	for range b.N {
		runCommandLoad(b, *cmdDevices, *cmdRate, *cmdDuration)
	}
}

func runCommandLoad(b *testing.B, devices, rate int, duration time.Duration) {
	child := startChild(b, b.TempDir(), "TELEHUB_MAX_CONNECTIONS_PER_ADDRESS=0")
	w := watchCommands(b, child.http)
	ids := make([]string, devices)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-%04d", i)
	}
	devs := connectAnswerers(b, child.http, ids)
	defer devs.close()

	hubCPU0, selfCPU0, t0 := procCPU(child.cmd.Process.Pid), selfCPU(), time.Now()
	created, lag := createAtRate(b, child.http, ids, rate, duration)
	sendCPU := time.Since(t0)
	waitFor(b, "every command succeeded", func() bool { return w.succeededAll(created) })
	hubCPU := procCPU(child.cmd.Process.Pid) - hubCPU0
	self := selfCPU() - selfCPU0
	elapsed := time.Since(t0)

	warm := t0.Add(time.Second)
	var toCreated, toDelivered, toSucceeded []time.Duration
	for _, c := range created {
		if c.scheduled.Before(warm) {
			continue
		}
		at := w.times(c.id)
		toCreated = append(toCreated, c.answered.Sub(c.scheduled))
		toDelivered = append(toDelivered, at.delivered.Sub(c.scheduled))
		toSucceeded = append(toSucceeded, at.succeeded.Sub(c.scheduled))
	}
	report := func(name string, d []time.Duration) {
		slices.Sort(d)
		p50, p99 := pct(d, 0.50), pct(d, 0.99)
		b.ReportMetric(ms(p50), name+"-p50-ms")
		b.ReportMetric(ms(p99), name+"-p99-ms")
		b.Logf("%-10s p50 %6.1f ms  p99 %6.1f ms  max %6.1f ms", name, ms(p50), ms(p99), ms(d[len(d)-1]))
	}
	report("created", toCreated)
	report("delivered", toDelivered)
	report("succeeded", toSucceeded)
	commits, commitSum := metricAt(b, child.http, "telehub_commit_duration_seconds_count"), metricAt(b, child.http, "telehub_commit_duration_seconds_sum")
	writes := metricAt(b, child.http, "telehub_commit_batch_writes_sum")
	b.Logf("storage: %.0f commits, %.1f ms each on average (fsync included), %.1f writes per commit",
		commits, 1000*commitSum/max(commits, 1), writes/max(commits, 1))
	achieved := float64(len(created)) / sendCPU.Seconds()
	b.ReportMetric(achieved, "created/s")
	b.ReportMetric(100*hubCPU.Seconds()/elapsed.Seconds(), "hub-cpu-%")
	b.Logf("%d devices, %d commands in %s (%.0f/s, asked %d/s; load tool at most %s behind), %d counted; "+
		"hub CPU %.0f %%, load tool CPU %.0f %% over %s", devices, len(created), sendCPU.Round(time.Millisecond), achieved, rate,
		lag.Round(time.Millisecond), len(toSucceeded), 100*hubCPU.Seconds()/elapsed.Seconds(),
		100*self.Seconds()/elapsed.Seconds(), elapsed.Round(time.Millisecond))
}

// metricAt reads the value of a sample without labels from the /metrics
// of the hub at hostPort.
func metricAt(b *testing.B, hostPort, name string) float64 {
	resp, err := http.Get("http://" + hostPort + "/metrics")
	if err != nil {
		b.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func pct(d []time.Duration, p float64) time.Duration { return d[int(p*float64(len(d)-1))] }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// procCPU is the user + system CPU time of process pid so far.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
}

// selfCPU is this process's user + system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// createdCommand is one command the load created.
type createdCommand struct {
	id                  string
	scheduled, answered time.Time
}

// createAtRate creates commands through REST at rate per second for
// duration, round robin over devices, from a pool of workers. It returns
// every created command and how far behind its schedule the load fell at
// most.
func createAtRate(b *testing.B, hostPort string, devices []string, rate int, duration time.Duration) ([]createdCommand, time.Duration) {
	workers := *cmdWorkers
	tr := &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	type job struct {
		n         int
		scheduled time.Time
	}
	jobs := make(chan job, rate)
	var (
		mu      sync.Mutex
		created []createdCommand
		failed  error
		wg      sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				id, err := postCommand(client, hostPort, devices[j.n%len(devices)], j.n)
				mu.Lock()
				if err != nil && failed == nil {
					failed = err
				} else if err == nil {
					created = append(created, createdCommand{id: id, scheduled: j.scheduled, answered: time.Now()})
				}
				mu.Unlock()
			}
		}()
	}
	var lag time.Duration
	start := time.Now()
	total := int(duration.Seconds() * float64(rate))
	for n := range total {
		at := start.Add(time.Duration(n) * time.Second / time.Duration(rate))
		if d := time.Until(at); d > 0 {
			time.Sleep(d) // pacing the load, not waiting for a result
		} else {
			lag = max(lag, -d)
		}
		jobs <- job{n: n, scheduled: at}
	}
	close(jobs)
	wg.Wait()
	if failed != nil {
		b.Fatalf("create command: %v", failed)
	}
	return created, lag
}

func postCommand(client *http.Client, hostPort, device string, n int) (string, error) {
	body := fmt.Sprintf(`{"name":"ping","params":{"n":%d}}`, n)
	resp, err := client.Post("http://"+hostPort+"/v1/devices/"+device+"/commands", "application/json", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var c struct{ ID string }
	if err := json.Unmarshal(b, &c); err != nil {
		return "", err
	}
	return c.ID, nil
}

// answerer is a lean WebSocket device: it answers every command frame at
// once with a command_ack and a command_result "ok".
type answerer struct {
	gws.BuiltinEventHandler
	done chan struct{}
}

func (a *answerer) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	var f struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	}
	if json.Unmarshal(m.Bytes(), &f) != nil || f.Type != "command" {
		return
	}
	_ = c.WriteString(`{"type":"command_ack","id":"` + f.ID + `"}`)
	_ = c.WriteString(`{"type":"command_result","id":"` + f.ID + `","status":"ok","result":{"pong":true}}`)
}

// fleet is the connected answerers.
type fleet struct {
	conns []*gws.Conn
	devs  []*answerer
}

// connectAnswerers connects one answerer per device id, 50 dials at a time.
func connectAnswerers(b *testing.B, hostPort string, ids []string) *fleet {
	f := &fleet{conns: make([]*gws.Conn, len(ids)), devs: make([]*answerer, len(ids))}
	sem := make(chan struct{}, 50)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed error
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			a := &answerer{done: make(chan struct{})}
			conn, resp, err := gws.NewClient(a, &gws.ClientOption{Addr: "ws://" + hostPort + "/v1/devices/" + id + "/ws"})
			if err != nil {
				mu.Lock()
				failed = fmt.Errorf("dial %s: %w", id, err)
				mu.Unlock()
				return
			}
			_ = resp.Body.Close()
			f.conns[i], f.devs[i] = conn, a
			go func() { defer close(a.done); conn.ReadLoop() }()
		}()
	}
	wg.Wait()
	if failed != nil {
		f.close()
		b.Fatal(failed)
	}
	return f
}

// close closes every connection and waits for its read loop.
func (f *fleet) close() {
	for i, c := range f.conns {
		if c != nil {
			_ = c.NetConn().Close()
			<-f.devs[i].done
		}
	}
}

// stateTimes is when the watcher saw a command's events.
type stateTimes struct{ delivered, succeeded time.Time }

// commandWatcher follows commands/# over SSE and notes when each
// command's delivered and succeeded events arrive.
type commandWatcher struct {
	mu   sync.Mutex
	seen map[string]stateTimes
}

func watchCommands(b *testing.B, hostPort string) *commandWatcher {
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+hostPort+"/v1/stream?topic=commands/%23", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		cancel()
		b.Fatalf("watch commands: %v %v", err, resp)
	}
	w := &commandWatcher{seen: make(map[string]stateTimes)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.read(resp.Body)
	}()
	b.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	return w
}

func (w *commandWatcher) read(body io.Reader) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: "))
		if !ok {
			continue
		}
		now := time.Now()
		var c struct{ ID, State string }
		if json.Unmarshal(data, &c) != nil {
			continue
		}
		w.mu.Lock()
		t := w.seen[c.ID]
		switch c.State {
		case "delivered":
			t.delivered = now
		case "succeeded":
			t.succeeded = now
		}
		w.seen[c.ID] = t
		w.mu.Unlock()
	}
}

func (w *commandWatcher) times(id string) stateTimes {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen[id]
}

// succeededAll reports whether the watcher saw every command delivered
// and succeeded.
func (w *commandWatcher) succeededAll(cmds []createdCommand) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range cmds {
		t := w.seen[c.id]
		if t.delivered.IsZero() || t.succeeded.IsZero() {
			return false
		}
	}
	return true
}
