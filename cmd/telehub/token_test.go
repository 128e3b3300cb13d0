package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"
	"testing"

	"github.com/telehub/telehub/internal/auth"
)

func runToken(t *testing.T, args ...string) (lines []string, out string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(append([]string{"token"}, args...), noEnv, &stdout, &stderr); code != 0 {
		t.Fatalf("token %v: exit %d, stderr %q", args, code, stderr.String())
	}
	return strings.Split(stdout.String(), "\n"), stdout.String()
}

// The first line is a fresh token, the second its sha256: form, which the
// configuration takes.
func TestTokenPrintsTokenAndHash(t *testing.T) {
	lines, _ := runToken(t)
	tok, hash := lines[0], lines[1]
	sum := sha256.Sum256([]byte(tok))
	if len(tok) != 43 || hash != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Fatalf("token %q hash %q", tok, hash)
	}
	if got, err := auth.ParseSecret(hash); err != nil || got != hash {
		t.Fatalf("the configuration refuses %q: %v", hash, err)
	}
	if again, _ := runToken(t); again[0] == tok {
		t.Fatal("two runs made the same token")
	}
}

func TestTokenSaysHowToUseIt(t *testing.T) {
	cases := []struct {
		args []string
		want []string
	}{
		{nil, []string{"admin_token", "device_tokens", "restart"}},
		{[]string{"--device", "pump-7"}, []string{"device_tokens:\n    pump-7: sha256:", "username pump-7", "Bearer"}},
		{[]string{"--watcher", "ops", "--topic", "telemetry/#", "--topic", "presence/+"},
			[]string{"- name: ops\n      token: sha256:", `topics: ["telemetry/#", "presence/+"]`, "?token="}},
		{[]string{"--watcher", "all"}, []string{`topics: ["#"]`}},
		{[]string{"--admin"}, []string{"admin_token: sha256:", "TELEHUB_ADMIN_TOKEN=sha256:"}},
	}
	for _, c := range cases {
		lines, out := runToken(t, c.args...)
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q:\n%s", c.args, w, out)
			}
		}
		if strings.Contains(out[len(lines[0]):], lines[0]) {
			t.Errorf("%v: the token is printed twice", c.args)
		}
	}
	lines, _ := runToken(t, "--device", "d1", "--quiet")
	if len(lines) != 3 || lines[2] != "" {
		t.Fatalf("--quiet printed %q", lines)
	}
}

func TestTokenRefusals(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--device", "a/b"}, `device id "a/b"`},
		{[]string{"--watcher", "-x"}, `watcher name "-x"`},
		{[]string{"--device", "d", "--admin"}, "one of --device, --watcher and --admin"},
		{[]string{"--topic", "#"}, "--topic goes with --watcher"},
		{[]string{"--watcher", "w", "--topic", "a/#/b"}, "--topic"},
		{[]string{"--nope"}, "not defined"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	}
	for _, c := range cases {
		var errOut bytes.Buffer
		if code := run(append([]string{"token"}, c.args...), noEnv, io.Discard, &errOut); code != 2 || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, errOut.String(), c.want)
		}
	}
}
