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

func noEnv(string) string { return "" }

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"version"}, noEnv, &out, io.Discard); code != 0 || !strings.HasPrefix(out.String(), "telehub ") {
		t.Fatalf("exit %d, output %q", code, out.String())
	}
}

func TestBadFlagsExit2(t *testing.T) {
	for _, args := range [][]string{{"--nope"}, {"--device-timeout", "soon"}, {"--http-addr", "0.0.0.0:1"}} {
		var errOut bytes.Buffer
		if code := run(args, noEnv, io.Discard, &errOut); code != 2 || errOut.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut.String())
		}
	}
}

func TestHelpExits0(t *testing.T) {
	var errOut bytes.Buffer
	if code := run([]string{"--help"}, noEnv, io.Discard, &errOut); code != 0 || !strings.Contains(errOut.String(), "-http-addr") {
		t.Fatalf("exit %d, usage %q", code, errOut.String())
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

	check := func() int { return run([]string{"healthcheck", "--http-addr", addr}, noEnv, io.Discard, io.Discard) }
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
