package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqttsrv "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// childArgsEnv, when set, makes the test binary run firmware-sim with the
// JSON array of arguments it holds instead of the tests, so that a test can
// send it a real signal.
const childArgsEnv = "FIRMWARE_SIM_TEST_ARGS"

// runChild runs firmware-sim as the child process of a test.
func runChild() int {
	var args []string
	if err := json.Unmarshal([]byte(os.Getenv(childArgsEnv)), &args); err != nil {
		return 3
	}
	return run(args, os.Stdout, os.Stderr)
}

// refusingHook is a broker that takes every publish and never acks a
// reading, as a hub does whose storage refuses writes (a full disk).
type refusingHook struct {
	mqttsrv.HookBase
	readings atomic.Int64
}

func (h *refusingHook) ID() string { return "refuse-readings" }

func (h *refusingHook) Provides(b byte) bool { return b == mqttsrv.OnPublish }

func (h *refusingHook) OnPublish(_ *mqttsrv.Client, pk packets.Packet) (packets.Packet, error) {
	if strings.HasSuffix(pk.TopicName, "/telemetry") {
		h.readings.Add(1)
		return pk, packets.ErrRejectPacket // no PUBACK
	}
	return pk, nil
}

// startRefusingBroker starts an MQTT broker that never acks a reading; the
// test's cleanup closes it.
func startRefusingBroker(t *testing.T) (addr string, hook *refusingHook) {
	t.Helper()
	b, ln, hook := newRefusingBroker(t)
	t.Cleanup(func() { _ = b.Close() })
	return ln.Addr().String(), hook
}

// newRefusingBroker starts an MQTT broker that never acks a reading on a
// listener that closes its connections when the broker closes.
func newRefusingBroker(t *testing.T) (*mqttsrv.Server, *closingListener, *refusingHook) {
	t.Helper()
	b := mqttsrv.New(&mqttsrv.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	hook := new(refusingHook)
	if err := errors.Join(b.AddHook(new(auth.AllowHook), nil), b.AddHook(hook, nil)); err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := newClosingListener(tcp)
	if err := b.AddListener(&safeCloseNet{Net: listeners.NewNet("t", ln), server: b}); err != nil {
		t.Fatal(err)
	}
	if err := b.Serve(); err != nil {
		t.Fatal(err)
	}
	return b, ln, hook
}

// TestRefusingBrokerClosesWithASilentConnection holds a connection that
// never sends CONNECT open while the test broker closes: the close must
// end it and return, or a stray connection would hang a test's cleanup.
func TestRefusingBrokerClosesWithASilentConnection(t *testing.T) {
	b, ln, _ := newRefusingBroker(t)
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(30 * time.Second)
	for ln.open() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the broker never accepted the connection")
		}
		time.Sleep(5 * time.Millisecond)
	}
	closed := make(chan struct{})
	go func() {
		_ = b.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		_ = conn.Close() // lets the close end before the test does
		<-closed
		t.Fatal("the broker's Close waited for a connection that never sent CONNECT")
	}
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("the silent connection is still open after Close")
	}
}

// TestFirstSignalStopsPromptlyWhileTheHubRefuses runs firmware-sim against
// a broker that never acks a reading, long enough for every device's
// window of unacked readings to fill, then sends one SIGTERM: the
// simulator must print its summary and exit 1 (readings stayed unacked)
// within its drain timeout and a margin, not hang until a second signal.
func TestFirstSignalStopsPromptlyWhileTheHubRefuses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs firmware-sim as a child process")
	}
	addr, hook := startRefusingBroker(t)
	args, _ := json.Marshal([]string{
		"--transport", "mqtt", "--mqtt", "tcp://" + addr, "--devices", "4", "--rate", "200",
		"--buffer", "8", "--duration", "0", "--drain-timeout", "500ms", "--heartbeat", "-1s", "--quiet", "--json",
	})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childArgsEnv+"="+string(args))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	// As many readings as the devices' buffers and ack windows hold.
	deadline := time.Now().Add(30 * time.Second)
	for hook.readings.Load() < 36 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d readings reached the broker; stderr %s", hook.readings.Load(), stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second) // load on the full windows, not synchronization
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	const prompt = 10 * time.Second // the drain timeout and a wide margin
	var err error
	select {
	case err = <-exited:
	case <-time.After(prompt):
		t.Fatalf("firmware-sim still running %v after SIGTERM; stderr %s", prompt, stderr.String())
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1; stderr %s", err, stderr.String())
	}
	var sum struct {
		Sent    uint64 `json:"sent"`
		Unacked uint64 `json:"unacked"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil || sum.Sent == 0 || sum.Unacked == 0 {
		t.Fatalf("summary %q (%v): want readings sent and left unacked", stdout.String(), err)
	}
	if !strings.Contains(stderr.String(), "not acknowledged") {
		t.Errorf("stderr %q does not say readings stayed unacked", stderr.String())
	}
}
