package hub

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lxzan/gws"
	"go.uber.org/goleak"

	"github.com/telehub/telehub/internal/config"
)

// childEnv, when set, makes the test binary run a hub instead of tests:
// the crash test starts it as a child process and kills it with SIGKILL.
const childEnv = "TELEHUB_TEST_HUB_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(runChild())
	}
	if spec, ok := os.LookupEnv(idleEnv); ok {
		os.Exit(runIdleClients(spec))
	}
	goleak.VerifyTestMain(m)
}

// runChild runs a hub configured by TELEHUB_* variables and prints its
// addresses on one line of stdout.
func runChild() int {
	cfg, err := config.Load(nil, os.LookupEnv, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	h, err := New(cfg, NewLogger(cfg, os.Stderr))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := h.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("READY %s %s\n", h.HTTPAddr(), h.MQTTAddr())
	<-ctx.Done()
	if err := h.Shutdown(context.Background()); err != nil {
		return 1
	}
	return 0
}

// childHub is a hub in a child process.
type childHub struct {
	cmd        *exec.Cmd
	http, mqtt string
}

// startChild starts a hub in a child process on dataDir, with env
// (TELEHUB_…=…) added to its environment; it is killed when the test ends.
func startChild(t testing.TB, dataDir string, env ...string) *childHub {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1",
		"TELEHUB_HTTP_ADDR=127.0.0.1:0", "TELEHUB_MQTT_ADDR=127.0.0.1:0",
		"TELEHUB_DATA_DIR="+dataDir, "TELEHUB_LOG_LEVEL=warn")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child hub did not start: %v", err)
	}
	f := strings.Fields(line)
	if len(f) < 3 || f[0] != "READY" {
		t.Fatalf("child hub said %q", line)
	}
	c := &childHub{cmd: cmd, http: f[1], mqtt: f[2]}
	t.Cleanup(func() { c.kill() })
	return c
}

func (c *childHub) kill() {
	if c.cmd.ProcessState == nil {
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		_ = c.cmd.Wait()
	}
}

// streamer is a device that keeps a window of unacknowledged frames in
// flight, resends them after a reconnect with their original seq, and
// remembers what the hub acknowledged.
type streamer struct {
	gws.BuiltinEventHandler
	acks   chan uint64
	closed chan struct{}
}

func (s *streamer) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	var f struct {
		Type string `json:"type"`
		Seq  uint64 `json:"seq"`
	}
	if json.Unmarshal(m.Bytes(), &f) == nil && f.Type == "ack" {
		s.acks <- f.Seq
	}
}

func (s *streamer) OnClose(c *gws.Conn, err error) { close(s.closed) }

// streamUntilClosed sends frames from seq next on, keeping up to window
// unacknowledged, until the connection drops or stop closes. pending holds
// the seqs sent and not yet acked; acked collects the acked ones.
func streamUntilClosed(addr, device string, next *uint64, pending *[]uint64, acked map[uint64]bool, stop <-chan struct{}) error {
	frame := func(seq uint64) string {
		return fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"n":%d}}`, seq, seq)
	}
	return streamFrames(addr, device, frame, next, pending, acked, stop)
}

// streamFrames is streamUntilClosed with frame making the frame of a seq.
func streamFrames(addr, device string, frame func(uint64) string, next *uint64, pending *[]uint64, acked map[uint64]bool, stop <-chan struct{}) error {
	s := &streamer{acks: make(chan uint64, 4096), closed: make(chan struct{})}
	conn, resp, err := gws.NewClient(s, &gws.ClientOption{Addr: "ws://" + addr + "/v1/devices/" + device + "/ws"})
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	done := make(chan struct{})
	go func() { defer close(done); conn.ReadLoop() }()
	defer func() { _ = conn.NetConn().Close(); <-done }()

	for _, seq := range *pending { // resend, original seq
		if conn.WriteString(frame(seq)) != nil {
			return nil
		}
	}
	const window = 64
	for {
		for len(*pending) < window {
			select {
			case <-stop:
				return nil
			default:
			}
			seq := *next
			if conn.WriteString(frame(seq)) != nil {
				return nil
			}
			*pending = append(*pending, seq)
			*next = seq + 1
		}
		select {
		case seq := <-s.acks:
			acked[seq] = true
			for len(*pending) > 0 && acked[(*pending)[0]] {
				*pending = (*pending)[1:]
			}
		case <-s.closed:
			return nil
		case <-stop:
			return nil
		}
	}
}

// TestCrashKeepsEveryAckedReadingExactlyOnce kills a hub with SIGKILL three
// times while a device streams readings, restarts it on the same data, and
// checks that every acknowledged reading is stored exactly once.
func TestCrashKeepsEveryAckedReadingExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hubs as child processes")
	}
	dataDir := t.TempDir()
	acked := map[uint64]bool{}
	var pending []uint64
	next := uint64(1)

	child := startChild(t, dataDir)
	for round := 0; round < 4; round++ {
		stop := make(chan struct{})
		errc := make(chan error, 1)
		go func() { errc <- streamUntilClosed(child.http, "crashy", &next, &pending, acked, stop) }()
		if round < 3 {
			time.Sleep(time.Duration(300+200*round) * time.Millisecond)
			child.kill() // SIGKILL mid-stream
		} else {
			time.Sleep(300 * time.Millisecond)
			close(stop)
		}
		if err := <-errc; err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if round < 3 {
			child = startChild(t, dataDir)
		}
	}
	// Drain: let the last pending frames be acked or resent.
	for i := 0; len(pending) > 0 && i < 5; i++ {
		stop := make(chan struct{})
		time.AfterFunc(500*time.Millisecond, func() { close(stop) })
		if err := streamUntilClosed(child.http, "crashy", &next, &pending, acked, stop); err != nil {
			t.Fatal(err)
		}
	}
	if len(acked) < 100 {
		t.Fatalf("only %d readings acked: the test did not exercise much", len(acked))
	}

	evs := eventsAt(t, child.http, "telemetry/crashy/n")
	count := map[uint64]int{}
	for _, e := range evs {
		count[uint64(e.Data["device_seq"].(float64))]++
	}
	for seq := range acked {
		if count[seq] != 1 {
			t.Errorf("acked seq %d stored %d times", seq, count[seq])
		}
	}
	for seq, n := range count {
		if n > 1 {
			t.Errorf("seq %d stored %d times", seq, n)
		}
	}
	t.Logf("%d readings acked across 3 SIGKILLs, %d stored", len(acked), len(evs))
}

func TestRestartKeepsDevicesStateAndEvents(t *testing.T) {
	cfg := testConfig(t)
	h := startHub(t, cfg)
	d := dialDevice(t, h, "r1")
	for seq := 1; seq <= 20; seq++ {
		d.send(t, fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"temp":%d,"hum":%d}}`, seq, seq, 100-seq))
		if m := d.next(t); m["type"] != "ack" {
			t.Fatalf("seq %d: %v", seq, m)
		}
	}
	c := mqttClient(t, h, "r2-client", nil)
	publish(t, c, "devices/r2/telemetry", 1, `{"level":3,"seq":5}`)
	before := events(t, h, "telemetry/#")
	var stateBefore map[string]any
	getJSON(t, h, "/v1/devices/r1", &stateBefore)
	var devicesBefore []map[string]any
	getJSON(t, h, "/v1/devices", &devicesBefore)
	stopHub(t, h)

	cfg.HTTPAddr, cfg.MQTTAddr = "127.0.0.1:0", "127.0.0.1:0"
	h2 := startHub(t, cfg)
	after := events(t, h2, "telemetry/#")
	if len(after) != len(before) {
		t.Fatalf("events: %d before restart, %d after", len(before), len(after))
	}
	for i := range before {
		if before[i].ID != after[i].ID || before[i].Data["value"] != after[i].Data["value"] {
			t.Fatalf("event %d changed across restart: %+v vs %+v", i, before[i], after[i])
		}
	}
	var stateAfter map[string]any
	getJSON(t, h2, "/v1/devices/r1", &stateAfter)
	if fmt.Sprint(stateAfter["state"]) != fmt.Sprint(stateBefore["state"]) {
		t.Errorf("state changed: %v vs %v", stateBefore["state"], stateAfter["state"])
	}
	var devicesAfter []map[string]any
	getJSON(t, h2, "/v1/devices", &devicesAfter)
	if len(devicesAfter) != len(devicesBefore) {
		t.Errorf("devices: %d before, %d after", len(devicesBefore), len(devicesAfter))
	}

	// Dedup state survived: a resend of seq 20 is not stored; new ids go on
	// above the old ones.
	d2 := dialDevice(t, h2, "r1")
	d2.send(t, `{"type":"telemetry","seq":20,"values":{"temp":1000}}`)
	d2.send(t, `{"type":"telemetry","seq":21,"values":{"temp":21}}`)
	for range 2 {
		if m := d2.next(t); m["type"] != "ack" {
			t.Fatalf("want ack, got %v", m)
		}
	}
	newer := events(t, h2, "telemetry/r1/temp")
	last := newer[len(newer)-1]
	if len(newer) != 21 || last.Data["value"] != 21.0 {
		t.Fatalf("after restart: %d temp events, last %v", len(newer), last.Data)
	}
	if last.ID <= before[len(before)-1].ID {
		t.Errorf("new id %s not above old last id %s", last.ID, before[len(before)-1].ID)
	}
}
