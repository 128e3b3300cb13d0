package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	firmwaresim "github.com/telehub/telehub/firmware-sim"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(childArgsEnv) != "" {
		os.Exit(runChild())
	}
	goleak.VerifyTestMain(m)
}

func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"unknown flag", []string{"--nope"}, 2, "flag provided but not defined"},
		{"bad transport", []string{"--transport", "udp"}, 2, "transport"},
		{"bad qos", []string{"--qos", "2"}, 2, "qos"},
		{"bad watch transport", []string{"--watch-transport", "mqtt"}, 2, "watch-transport"},
		{"bad watch filter", []string{"--watchers", "1", "--watch-filter", "telemetry/sim-+/#"}, 2, "watch-filter"},
		{"invalid config", []string{"--drop-rate", "2"}, 2, "drop-rate"},
		{"duration without unit", []string{"--duration", "5"}, 2, `"5" needs a unit, like 5s`},
		{"bad duration", []string{"--heartbeat", "often"}, 2, `"often" is not a duration like 10s`},
		{"no devices", []string{"--devices", "0"}, 2, "devices must be at least 1, got 0"},
		{"devices word", []string{"--devices", "many"}, 2, `"many" is not a whole number`},
		{"zero rate", []string{"--rate", "0"}, 2, "rate must be more than 0"},
		{"missing token file", []string{"--token-file", "/nonexistent/tokens"}, 2, "token-file"},
		{"missing ca", []string{"--ca", "/nonexistent/ca.pem"}, 2, "ca"},
		{"bad broker scheme", []string{"--mqtt", "http://127.0.0.1:1"}, 2, "tcp:// or ssl://"},
		{"hub unreachable", []string{"--hub", "http://127.0.0.1:1", "--duration", "50ms",
			"--drain-timeout", "1ms", "--quiet", "--json"}, 1, "no device could connect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Fatalf("stderr %q does not mention %q", stderr.String(), tt.stderr)
			}
		})
	}
}

func TestHelpExits0(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "-token-pattern") {
		t.Fatalf("exit %d, stdout %q", code, stdout.String())
	}
	if code := run([]string{"--duration", "5"}, &stdout, &stderr); code != 2 || strings.Contains(stderr.String(), "Usage") {
		t.Fatalf("a bad flag prints the usage: %q", stderr.String())
	}
}

func TestReportJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	missing, dups := 1, 0
	sum := &firmwaresim.Summary{Sent: 3, Acked: 2, Missing: &missing, Duplicates: &dups,
		Verify: &firmwaresim.VerifyResult{Missing: 1}}
	if code := report(sum, nil, true, &stdout, &stderr); code != 1 {
		t.Fatalf("failed verify exits %d, want 1", code)
	}
	var m map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &m); err != nil {
		t.Fatalf("stdout %q: %v", stdout.String(), err)
	}
	if m["sent"] != 3.0 || m["missing"] != 1.0 || m["duplicates"] != 0.0 {
		t.Fatalf("summary %v", m)
	}
	sum.Verify.OK, sum.Verify.Missing = true, 0
	stdout.Reset()
	if code := report(sum, nil, false, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "verify OK") {
		t.Fatalf("exit %d, text %q", code, stdout.String())
	}
}
