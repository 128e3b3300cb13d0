package clustertest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/telehub/telehub/internal/mosquittotest"
)

// clusterConfigs is the folder of the cluster example.
const clusterConfigs = "../../configs/cluster"

// TestMosquittoConf runs Mosquitto on configs/cluster/mosquitto.conf (on a
// free port and a temp dir, as run.sh does): it accepts its options, and a
// clean stop writes the persistence database that keeps the hubs' sessions.
func TestMosquittoConf(t *testing.T) {
	bin := mosquittotest.Binary(t)
	conf, err := os.ReadFile(filepath.Join(clusterConfigs, "mosquitto.conf"))
	if err != nil {
		t.Fatal(err)
	}
	dir, addr := t.TempDir(), freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	text := regexp.MustCompile(`(?m)^listener .*$`).ReplaceAllString(string(conf), "listener "+port+" 127.0.0.1")
	text = regexp.MustCompile(`(?m)^persistence_location .*$`).ReplaceAllString(text, "persistence_location "+dir+"/")
	text += "user " + currentUser(t) + "\n"
	path := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", path)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	waitFor(t, "mosquitto to listen on "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("mosquitto on the cluster configuration: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "mosquitto.db")); err != nil {
		t.Fatalf("no persistence database after a clean stop: %v\n%s", err, out)
	}
}

// TestMosquittoConfSizing checks the arithmetic of the queue limits that
// mosquitto.conf states: Q = R x 60 x N messages and Q x S bytes.
func TestMosquittoConfSizing(t *testing.T) {
	conf, err := os.ReadFile(filepath.Join(clusterConfigs, "mosquitto.conf"))
	if err != nil {
		t.Fatal(err)
	}
	const r, n, s = 1000, 15, 200 // messages/s, minutes, bytes a message
	for _, want := range []string{
		fmt.Sprintf("\nmax_queued_messages %d\n", r*60*n),
		fmt.Sprintf("\nmax_queued_bytes %d\n", r*60*n*s),
	} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("mosquitto.conf lacks %q", strings.TrimSpace(want))
		}
	}
}

// TestNginxConf checks configs/cluster/nginx.conf with nginx -t.
func TestNginxConf(t *testing.T) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
		if _, serr := os.Stat(bin); serr != nil {
			if os.Getenv("TELEHUB_REQUIRE_EXTERNAL") == "1" {
				t.Fatalf("nginx not installed and TELEHUB_REQUIRE_EXTERNAL=1: %v", err)
			}
			t.Skip("nginx not installed (Debian: apt-get install nginx-light): the nginx example is not checked")
		}
	}
	conf, err := filepath.Abs(filepath.Join(clusterConfigs, "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-t", "-q", "-c", conf, "-p", t.TempDir(), "-e", "stderr").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}
