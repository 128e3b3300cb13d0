// Package mosquittotest runs a real Mosquitto broker on a loopback port for
// tests of telehub's external-broker mode. Tests skip when mosquitto is not
// installed, and fail instead when TELEHUB_REQUIRE_EXTERNAL=1 (as in CI).
package mosquittotest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// startWait bounds how long Start waits for the broker to accept
// connections.
const startWait = 10 * time.Second

// Broker is a mosquitto process listening on Addr (host:port).
type Broker struct {
	Addr string
	path string
	conf string
	cmd  *exec.Cmd
}

// Binary returns the mosquitto binary, skipping (or failing, with
// TELEHUB_REQUIRE_EXTERNAL=1) the test when it is not installed.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("mosquitto")
	if err != nil {
		if os.Getenv("TELEHUB_REQUIRE_EXTERNAL") == "1" {
			t.Fatalf("mosquitto not on PATH and TELEHUB_REQUIRE_EXTERNAL=1: %v", err)
		}
		t.Skip("mosquitto not on PATH: install it (Debian: apt-get install mosquitto) to run the external broker tests")
	}
	return path
}

// Start runs mosquitto on a free loopback port with anonymous access and no
// persistence; extra is appended to its configuration. It is stopped when
// the test ends.
func Start(t testing.TB, extra string) *Broker {
	t.Helper()
	b := &Broker{path: Binary(t)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.Addr = ln.Addr().String()
	_ = ln.Close()
	_, port, _ := net.SplitHostPort(b.Addr)
	b.conf = filepath.Join(t.TempDir(), "mosquitto.conf")
	conf := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n%s", port, extra)
	if err := os.WriteFile(b.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	b.Restart(t)
	t.Cleanup(b.Stop)
	return b
}

// Restart starts the process again after Stop (Start calls it first) and
// waits until it accepts connections.
func (b *Broker) Restart(t testing.TB) {
	t.Helper()
	b.cmd = exec.Command(b.path, "-c", b.conf)
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	deadline := time.Now().Add(startWait)
	for {
		conn, err := net.Dial("tcp", b.Addr)
		if err == nil {
			_ = conn.Close()
			return
		}
		if time.Now().After(deadline) {
			b.Stop()
			t.Fatalf("mosquitto does not listen on %s: %v", b.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop terminates the process and waits for it; it is safe to call twice.
func (b *Broker) Stop() {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	_ = b.cmd.Wait()
	b.cmd = nil
}
