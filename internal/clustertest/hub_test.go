package clustertest

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hubProc is one hub of the cluster: cmd/telehub as a child process on a
// fixed loopback port and data directory, so that it can be killed and
// restarted as the same node.
type hubProc struct {
	t    *testing.T
	node string
	bin  string
	dir  string
	addr string   // HTTP host:port
	args []string // cluster and broker flags
	log  string   // path of its output, shown when the test fails
	cmd  *exec.Cmd
}

// url is the hub's HTTP base URL.
func (h *hubProc) url() string { return "http://" + h.addr }

// start runs the hub and waits until it answers /healthz.
func (h *hubProc) start() {
	h.t.Helper()
	logs, err := os.OpenFile(h.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		h.t.Fatal(err)
	}
	defer logs.Close()
	args := append([]string{"--http-addr", h.addr, "--mqtt-addr=", "--data-dir", h.dir, "--log-level", "debug"}, h.args...)
	h.cmd = exec.Command(h.bin, args...)
	h.cmd.Stdout, h.cmd.Stderr = logs, logs
	if err := h.cmd.Start(); err != nil {
		h.t.Fatalf("start hub %s: %v", h.node, err)
	}
	waitFor(h.t, "hub "+h.node+" to answer /healthz", func() bool { return httpStatus(h.url()+"/healthz") == http.StatusOK })
}

// ready reports whether the hub's /readyz answers 200.
func (h *hubProc) ready() bool { return httpStatus(h.url()+"/readyz") == http.StatusOK }

// waitReady waits until the hub is ready: connected to the broker and
// caught up with what the broker queued for it.
func (h *hubProc) waitReady() {
	h.t.Helper()
	waitFor(h.t, "hub "+h.node+" to answer /readyz with 200", h.ready)
}

// kill ends the hub with SIGKILL: no flush, no goodbye to the broker.
func (h *hubProc) kill() {
	if h.cmd == nil {
		return
	}
	_ = h.cmd.Process.Signal(syscall.SIGKILL)
	_ = h.cmd.Wait()
	h.cmd = nil
}

// freeze stops the hub with SIGSTOP: its connections stay open, and what
// is sent to it waits unanswered, until it is killed.
func (h *hubProc) freeze() {
	if h.cmd != nil {
		_ = h.cmd.Process.Signal(syscall.SIGSTOP)
	}
}

// stop ends the hub with SIGTERM, and SIGKILL when it has not exited
// within stopWait.
func (h *hubProc) stop() {
	if h.cmd == nil {
		return
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan struct{})
	go func() {
		_ = h.cmd.Wait()
		close(exited)
	}()
	select {
	case <-exited:
	case <-time.After(stopWait):
		h.t.Errorf("hub %s still runs %s after SIGTERM: killed", h.node, stopWait)
		_ = h.cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
	h.cmd = nil
}

// stopWait bounds a hub's graceful stop.
const stopWait = 30 * time.Second

// logTail returns the last lines of the hub's output.
func (h *hubProc) logTail(n int) string {
	b, _ := os.ReadFile(h.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// freeAddr returns a loopback host:port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// httpStatus returns the status code of GET url, 0 when it fails.
func httpStatus(url string) int {
	resp, err := probeClient.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

var probeClient = &http.Client{Timeout: 5 * time.Second}

// newHubProc prepares hub node of a cluster without starting it.
func newHubProc(t *testing.T, node string, args []string) *hubProc {
	t.Helper()
	dir := t.TempDir()
	return &hubProc{
		t: t, node: node, bin: binary(t, "cmd/telehub"), dir: filepath.Join(dir, "data"),
		addr: freeAddr(t), args: args, log: filepath.Join(dir, "telehub.log"),
	}
}
