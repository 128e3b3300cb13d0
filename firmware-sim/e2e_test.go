package firmwaresim

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"log/slog"

	"github.com/telehub/telehub/internal/config"
	"github.com/telehub/telehub/internal/hub"
)

// startRealHub runs a telehub in process on loopback port 0.
func startRealHub(t *testing.T, mod func(*config.Config)) *hub.Hub {
	t.Helper()
	cfg := config.Default()
	cfg.HTTPAddr, cfg.MQTTAddr, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
	if mod != nil {
		mod(&cfg)
	}
	h, err := hub.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("hub.New: %v", err)
	}
	if err := h.Start(t.Context()); err != nil {
		t.Fatalf("hub.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// A listener closed twice during Shutdown is reported as net.ErrClosed:
		// harmless for these tests.
		if err := h.Shutdown(ctx); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("hub.Shutdown: %v", err)
		}
	})
	return h
}

// TestE2EMixedWithFaults runs 50 WebSocket and 50 MQTT devices against a
// real hub with dropped connections and malformed payloads, two of them
// going silent, and verifies every confirmed reading is stored once.
func TestE2EMixedWithFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	h := startRealHub(t, func(c *config.Config) {
		c.DeviceTimeout, c.HeartbeatInterval = time.Second, 300*time.Millisecond
	})
	// 400 readings/s: what a hub under -race on a loaded 2-core machine
	// still acknowledges. Offered more, it falls behind by many seconds,
	// every dropped connection resends the device's whole unacknowledged
	// backlog, and the backlog can outlast the drain. The drain ends as
	// soon as every reading is confirmed; its timeout only bounds a hang.
	cfg := Config{
		Hub: "http://" + h.HTTPAddr(), MQTT: "tcp://" + h.MQTTAddr(), Transport: TransportMixed,
		Devices: 100, Rate: 4, DropRate: 0.02, MalformedRate: 0.02,
		Silent: 2, SilentAfter: 300 * time.Millisecond, Heartbeat: 200 * time.Millisecond,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		DrainTimeout: 2 * time.Minute, Verify: true,
	}
	// The silent devices must go offline while the others still send: the
	// MQTT one (no keepalive) by the hub's timeout; the WebSocket one, which
	// ignores the hub's pings, by the timeout or its connection's read
	// deadline, whichever the hub hits first.
	var wsReason, mqttReason string
	_, sum := runUntil(t, cfg, "faults and silent devices offline", func(s *Sim) bool {
		if wsReason == "" {
			wsReason = offlineReason(t, cfg.Hub, "sim-98")
		}
		if mqttReason == "" {
			mqttReason = offlineReason(t, cfg.Hub, "sim-99")
		}
		st := &s.stats
		return wsReason != "" && mqttReason != "" && st.drops.Load() >= 5 && st.malformed.Load() >= 5 &&
			st.errors.Load() >= 1 && st.acked.Load() >= 1000
	})
	t.Logf("readings %d acked %d resent %d drops %d malformed %d errors %d; verify %+v",
		sum.Readings, sum.Acked, sum.Resent, sum.Drops, sum.Malformed, sum.Errors, *sum.Verify)
	requireVerified(t, sum)
	if sum.Acked != sum.Readings {
		t.Fatalf("acked %d of %d", sum.Acked, sum.Readings)
	}
	if mqttReason != "timeout" || (wsReason != "timeout" && wsReason != "disconnect") {
		t.Fatalf("silent devices offline for %q (MQTT, want timeout) and %q (WebSocket, want timeout or disconnect)",
			mqttReason, wsReason)
	}
}

// offlineReason returns the reason of the first offline presence event the
// hub retains for device id, or "".
func offlineReason(t *testing.T, hubURL, id string) string {
	t.Helper()
	resp, err := http.Get(hubURL + "/v1/events?limit=10000&topic=" + url.QueryEscape("presence/"+id))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page []struct {
		Data struct {
			Reason string `json:"reason"`
			Online bool   `json:"online"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	for _, ev := range page {
		if !ev.Data.Online {
			return ev.Data.Reason
		}
	}
	return ""
}

// hubProcess is cmd/telehub run as a child process on fixed ports.
type hubProcess struct {
	t                  *testing.T
	bin, dir, httpAddr string
	mqttAddr           string
	cmd                *exec.Cmd
	logs               *os.File
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func buildTelehub(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "telehub")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/telehub/telehub/cmd/telehub").CombinedOutput()
	if err != nil {
		t.Fatalf("go build cmd/telehub: %v\n%s", err, out)
	}
	return bin
}

func (p *hubProcess) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.bin, "--http-addr", p.httpAddr, "--mqtt-addr", p.mqttAddr, "--data-dir", p.dir)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start telehub: %v", err)
	}
	waitFor(p.t, "telehub to answer /healthz", func() bool {
		resp, err := http.Get("http://" + p.httpAddr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func (p *hubProcess) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

// TestE2EHubKilledAndRestarted SIGKILLs the hub three times during a run
// and restarts it on the same ports and data directory; the devices
// reconnect, resend what was not acked with the original seqs, and verify
// finds every acked reading stored exactly once.
func TestE2EHubKilledAndRestarted(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	sum := runWithKills(t, func(*Config) {}, true)
	if sum.Disconnects < 3*20 || sum.Unacked != 0 {
		t.Fatalf("disconnects %d (want every device dropped 3 times), unacked %d", sum.Disconnects, sum.Unacked)
	}
}

// TestE2EHubKilledWhileDevicesReboot is TestE2EHubKilledAndRestarted with
// devices that also reboot (seq restarted at 1, a new boot id) and drop
// their connections: every acked reading of every seq epoch is stored once.
func TestE2EHubKilledWhileDevicesReboot(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	sum := runWithKills(t, func(c *Config) { c.RebootRate, c.DropRate = 0.01, 0.01 }, false)
	if sum.Reboots == 0 || sum.Unacked != 0 {
		t.Fatalf("reboots %d (want some), unacked %d", sum.Reboots, sum.Unacked)
	}
}

// runWithKills runs 20 mixed devices (cfg changed by mod) against a
// telehub process that is SIGKILLed and restarted three times, and checks
// the run verified. With allOnline, each kill waits for every device to
// be connected again, so that each kill drops all of them.
func runWithKills(t *testing.T, mod func(*Config), allOnline bool) *Summary {
	t.Helper()
	logs, err := os.Create(filepath.Join(t.TempDir(), "telehub.log"))
	if err != nil {
		t.Fatal(err)
	}
	p := &hubProcess{t: t, bin: buildTelehub(t), dir: t.TempDir(), httpAddr: freePort(t), mqttAddr: freePort(t), logs: logs}
	p.start()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(logs.Name())
			t.Logf("telehub log:\n%s", lastLines(string(b), 40))
		}
	})
	cfg := Config{
		Hub: "http://" + p.httpAddr, MQTT: "tcp://" + p.mqttAddr, Transport: TransportMixed,
		Devices: 20, Rate: 20, BackoffMin: 20 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
		DrainTimeout: 30 * time.Second, Verify: true,
	}
	mod(&cfg)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var result atomic.Pointer[Summary]
	done := make(chan error, 1)
	go func() {
		sum, err := s.Run(ctx)
		result.Store(sum)
		done <- err
	}()
	for range 3 {
		waitAcks(t, s, 200)
		if allOnline {
			waitFor(t, "every device online", func() bool { return s.stats.online.Load() == int64(cfg.Devices) })
		}
		p.kill()
		p.start()
	}
	waitAcks(t, s, 200)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	sum := result.Load()
	t.Logf("readings %d acked %d resent %d disconnects %d connect failures %d reboots %d (%d lost); verify %+v",
		sum.Readings, sum.Acked, sum.Resent, sum.Disconnects, sum.ConnectFail, sum.Reboots, sum.RebootLost, *sum.Verify)
	requireVerified(t, sum)
	return sum
}

// waitAcks waits until n more readings were acked.
func waitAcks(t *testing.T, s *Sim, n uint64) {
	t.Helper()
	target := s.stats.acked.Load() + n
	waitFor(t, "readings to be acked", func() bool { return s.stats.acked.Load() >= target })
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestE2EReboots runs mixed devices that reboot (seq restarted at 1) and
// drop connections against a real hub: with a boot id, a clock or both,
// verify finds every acked reading of every seq epoch stored exactly once;
// with neither, the hub cannot tell a restarted counter from resends, and
// verify reports the readings it dropped.
func TestE2EReboots(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	tests := []struct {
		name            string
		noBoot, noClock bool
		lossless        bool
	}{
		{"boot and clock", false, false, true},
		{"clock only", true, false, true},
		{"boot only", false, true, true},
		{"neither", true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startRealHub(t, nil)
			cfg := Config{
				Hub: "http://" + h.HTTPAddr(), MQTT: "tcp://" + h.MQTTAddr(), Transport: TransportMixed,
				Devices: 10, Rate: 50, RebootRate: 0.02, DropRate: 0.01, NoBoot: tt.noBoot, NoClock: tt.noClock,
				BackoffMin: 5 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
				DrainTimeout: 30 * time.Second, Verify: true,
			}
			_, sum := runUntil(t, cfg, "reboots", func(s *Sim) bool {
				return s.stats.reboots.Load() >= 30 && s.stats.acked.Load() >= 1000
			})
			t.Logf("readings %d acked %d reboots %d (%d lost) drops %d; verify %+v",
				sum.Readings, sum.Acked, sum.Reboots, sum.RebootLost, sum.Drops, *sum.Verify)
			if tt.lossless {
				requireVerified(t, sum)
				return
			}
			if sum.Verify.OK || sum.Verify.Missing == 0 || sum.Verify.Duplicates != 0 {
				t.Fatalf("verify %+v: want readings missing after the reboots, none duplicated", *sum.Verify)
			}
		})
	}
}
