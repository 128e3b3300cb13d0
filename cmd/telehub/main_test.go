package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/telehub/telehub/internal/config"
	"github.com/telehub/telehub/internal/hub"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func noEnv(string) (string, bool) { return "", false }

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}, {"--http-addr", "127.0.0.1:1", "--version"}} {
		var out bytes.Buffer
		if code := run(args, noEnv, &out, io.Discard); code != 0 || !strings.HasPrefix(out.String(), "telehub ") {
			t.Errorf("%v: exit %d, output %q", args, code, out.String())
		}
	}
}

func TestBadCommandLinesExit2(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--nope"}, "unknown flag -nope"},
		{[]string{"--device-timeout", "soon"}, `"soon" is not a duration like 45s`},
		{[]string{"--http-addr", "0.0.0.0:1"}, "--insecure"},
		{[]string{"--http-addr", "foo"}, `http_addr "foo" has no port`},
		{[]string{"serve"}, `unknown command "serve"`},
		{[]string{"help", "nope"}, `unknown command "nope"; the commands are healthcheck, token`},
		{[]string{"help", "a", "b"}, "one command at most"},
		{[]string{"healthcheck", "extra"}, `unexpected argument "extra"`},
		{[]string{"healthcheck", "--nope"}, "unknown flag -nope"},
		{[]string{"--data-dir", t.TempDir(), "--mqtt-broker", "http://127.0.0.1:1883"}, `mqtt_broker "http://127.0.0.1:1883": the scheme`},
	}
	for _, c := range cases {
		var errOut bytes.Buffer
		if code := run(c.args, noEnv, io.Discard, &errOut); code != 2 || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, errOut.String(), c.want)
		}
	}
}

func TestHelp(t *testing.T) {
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"Usage: telehub [flags]", "healthcheck", "token", "version", "--http-addr host:port",
			"(default 127.0.0.1:8080; env TELEHUB_HTTP_ADDR)", "--max-payload size", "(default 64KiB"}},
		{[]string{"-h"}, []string{"Usage: telehub [flags]"}},
		{[]string{"help"}, []string{"Usage: telehub [flags]", "Commands", "--device-timeout duration"}},
		{[]string{"help", "healthcheck"}, []string{"Usage: telehub healthcheck [flags]", "/healthz", "telehub --help lists them"}},
		{[]string{"healthcheck", "--help"}, []string{"Usage: telehub healthcheck [flags]", "Exits 0"}},
		{[]string{"--data-dir", "x", "healthcheck", "-h"}, []string{"Usage: telehub healthcheck"}},
		{[]string{"help", "token"}, []string{"Usage: telehub token", "--device ID", "sha256:"}},
		{[]string{"token", "--help"}, []string{"Usage: telehub token"}},
		{[]string{"help", "version"}, []string{"Usage: telehub version", "Print the version"}},
		{[]string{"help", "help"}, []string{"Usage: telehub help [command]"}},
	}
	for _, c := range cases {
		var out bytes.Buffer
		if code := run(c.args, noEnv, &out, io.Discard); code != 0 {
			t.Errorf("%v: exit %d", c.args, code)
		}
		for _, w := range c.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: help lacks %q:\n%s", c.args, w, out.String())
			}
		}
	}
}

// TestServeAndHealthcheck runs the hub as main does, checks it with the
// healthcheck subcommand, stops it as a signal would, and checks again.
func TestServeAndHealthcheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	cfg := config.Default()
	cfg.HTTPAddr, cfg.MQTTAddr, cfg.DataDir = addr, "", t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, io.Discard) }()

	// The command may follow the flags.
	check := func() int { return run([]string{"--http-addr", addr, "healthcheck"}, noEnv, io.Discard, io.Discard) }
	deadline := time.Now().Add(15 * time.Second)
	for check() != 0 {
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("healthcheck never passed against the running hub")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel() // what SIGINT/SIGTERM do
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if code := check(); code == 0 {
		t.Fatal("healthcheck passed with the hub down")
	}
	// A wildcard listen address is checked on loopback.
	if err := hub.Healthcheck(context.Background(), config.Config{HTTPAddr: "0.0.0.0:" + strings.Split(addr, ":")[1]}); err == nil {
		t.Fatal("healthcheck of a stopped hub on 0.0.0.0 passed")
	}
}
