package clustertest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/telehub/telehub/internal/mosquittotest"
)

// TestRunScript runs configs/cluster/run.sh on free ports: a broker and
// three hubs that replicate a WebSocket device's readings to each other;
// Ctrl-C (SIGINT) stops all four.
func TestRunScript(t *testing.T) {
	mosquitto := mosquittotest.Binary(t)
	script, err := filepath.Abs(filepath.Join(clusterConfigs, "run.sh"))
	if err != nil {
		t.Fatal(err)
	}
	first := freePorts(t, 4) // three hubs, then the broker
	brokerPort := strconv.Itoa(first + 3)
	cmd := exec.Command("bash", script)
	cmd.Env = append(os.Environ(), "CLUSTER=runsh", "BROKER_PORT="+brokerPort, "FIRST_PORT="+strconv.Itoa(first),
		"DATA="+t.TempDir(), "TELEHUB="+binary(t, "cmd/telehub"), "MOSQUITTO="+mosquitto)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Signal(syscall.SIGINT)
			<-exited
		}
	}()

	var hubs []string
	for i := range 3 {
		hubs = append(hubs, fmt.Sprintf("http://127.0.0.1:%d", first+i))
	}
	for _, h := range hubs {
		waitFor(t, h+" of run.sh to be ready", func() bool { return httpStatus(h+"/readyz") == 200 })
	}
	s := startSim(t, simAt(hubs[0], "", "runsh-", 1, hubs[1:]...))
	waitFor(t, "a reading of hub 1 on hub 3", func() bool { return len(readEvents(t, hubs[2], telemetryFilter)) >= 10 })
	requireVerified(t, s.finish())

	_ = cmd.Process.Signal(syscall.SIGINT)
	stopped = true
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 130 {
			t.Fatalf("run.sh after SIGINT: %v, want exit status 130\n%s", err, out)
		}
	case <-time.After(waitGuard):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("run.sh still runs %s after SIGINT\n%s", waitGuard, out)
	}
	for _, addr := range append(hubs, "http://127.0.0.1:"+brokerPort) {
		if c, err := net.Dial("tcp", strings.TrimPrefix(addr, "http://")); err == nil {
			_ = c.Close()
			t.Fatalf("%s still listens after run.sh stopped\n%s", addr, out)
		}
	}
}

// freePorts returns the first of n consecutive loopback ports free right
// now.
func freePorts(t *testing.T, n int) int {
	t.Helper()
	for range 50 {
		_, p, _ := net.SplitHostPort(freeAddr(t))
		first, _ := strconv.Atoi(p)
		var held []net.Listener
		for i := range n {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", first+i))
			if err != nil {
				break
			}
			held = append(held, ln)
		}
		for _, ln := range held {
			_ = ln.Close()
		}
		if len(held) == n {
			return first
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}
