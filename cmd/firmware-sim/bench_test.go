package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestBenchExitCodes(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"unknown flag", []string{"bench", "--devices", "3"}, 2, "flag provided but not defined"},
		{"bad qos", []string{"bench", "--qos", "2"}, 2, "qos"},
		{"invalid config", []string{"bench", "--window", "70000"}, 2, "window"},
		{"broker unreachable", []string{"bench", "--mqtt", "tcp://127.0.0.1:1", "--json"}, 1, "dial 127.0.0.1:1"},
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

func TestBenchHelpExits0(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"bench", "--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "-watch-mqtt") {
		t.Fatalf("exit %d, stdout %q", code, stdout.String())
	}
}
