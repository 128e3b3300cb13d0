package auth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseCommandScopes(t *testing.T) {
	tooMany := make([]string, MaxScopes+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("d%d", i)
	}
	good := [][]string{nil, {}, {"pump-7"}, {"+"}, {"#"}, {"a", "b.c", "+"}}
	for _, ps := range good {
		if _, err := ParseCommandScopes(ps); err != nil {
			t.Errorf("ParseCommandScopes(%q) = %v", ps, err)
		}
	}
	bad := [][]string{{""}, {"a/b"}, {"commands/a"}, {"pump-+"}, {"a#"}, {"#/a"}, {strings.Repeat("x", 65)}, {"-a"}, tooMany}
	for _, ps := range bad {
		if _, err := ParseCommandScopes(ps); !errors.Is(err, ErrBadScope) {
			t.Errorf("ParseCommandScopes(%.40q) = %v, want ErrBadScope", ps, err)
		}
	}
}

func TestAllowCommands(t *testing.T) {
	tests := []struct {
		patterns []string
		device   string
		want     bool
	}{
		{[]string{"pump-7"}, "pump-7", true},
		{[]string{"pump-7"}, "pump-8", false},
		{[]string{"pump-8", "pump-7"}, "pump-7", true},
		{[]string{"+"}, "anything", true},
		{[]string{"#"}, "anything", true},
		{nil, "pump-7", false},
	}
	for _, tt := range tests {
		scopes, err := ParseCommandScopes(tt.patterns)
		if err != nil {
			t.Fatal(err)
		}
		if got := AllowCommands(scopes, tt.device); got != tt.want {
			t.Errorf("AllowCommands(%q, %s) = %v, want %v", tt.patterns, tt.device, got, tt.want)
		}
	}
}

func TestConfigCommandScopes(t *testing.T) {
	a := newAuth(t, Config{Watchers: []WatcherConfig{
		{Name: "ops", Token: watcherToken, Topics: []string{"commands/#"}, Commands: []string{"pump-7", "+"}},
		{Name: "view", Token: watcherToken + "v", Topics: []string{"#"}},
	}})
	if s, ok := a.Commands(watcherToken); !ok || !AllowCommands(s, "valve-1") {
		t.Fatalf("Commands(ops) = %v, %v", s, ok)
	}
	if s, ok := a.Commands(watcherToken + "v"); !ok || len(s) != 0 {
		t.Fatalf("Commands(view) = %v, %v: want a watcher without a commands scope", s, ok)
	}
	for _, tok := range []string{"", "nobody-token-0123456789", adminToken} {
		if _, ok := a.Commands(tok); ok {
			t.Errorf("Commands(%q) ok for no watcher's token", tok)
		}
	}
	want := []string{"pump-7", "+"}
	if got := a.Watchers()[0].Commands; !slices.Equal(got, want) {
		t.Fatalf("Watchers()[0].Commands = %q, want %q", got, want)
	}
	bad := Config{Path: "x", Watchers: []WatcherConfig{{Name: "ops", Token: watcherToken, Topics: []string{"#"}, Commands: []string{"a/b"}}}}
	if err := bad.Check(); !errors.Is(err, ErrBadScope) || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Check = %v, want ErrInvalidConfig and ErrBadScope", err)
	}
}

func TestIssueCommander(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	a := newAuth(t, Config{Path: path})
	cmds, err := ParseCommandScopes([]string{"pump-7"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := a.IssueCommander("ops", filters(t, "commands/#"), cmds)
	if err != nil {
		t.Fatal(err)
	}
	b := newAuth(t, Config{Path: path}) // the scope survives a reopen
	s, ok := b.Commands(tok)
	if !ok || !AllowCommands(s, "pump-7") || AllowCommands(s, "pump-8") {
		t.Fatalf("Commands after reopening = %v, %v", s, ok)
	}
	data, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(data), `"commands": [`) {
		t.Fatalf("file %s (%v): want the commands scope", data, err)
	}
	plain, err := a.IssueWatcher("view", filters(t, "#"))
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := a.Commands(plain); !ok || len(s) != 0 {
		t.Fatalf("a plain watcher's Commands = %v, %v", s, ok)
	}
	for _, bad := range [][]string{{"telemetry/#"}, {"commands/a/b"}, {"commands/+/x"}} {
		if _, err := a.IssueCommander("ops2", filters(t, "#"), filters(t, bad...)); !errors.Is(err, ErrBadScope) {
			t.Errorf("IssueCommander with commands %q = %v, want ErrBadScope", bad, err)
		}
	}
}

func TestBadFileCommands(t *testing.T) {
	h := hashToken(deviceToken).String()
	for _, cmds := range []string{`["a/b"]`, `[""]`, `"pump-7"`} {
		body := `{"version":1,"watchers":[{"name":"w","hash":"` + h + `","topics":["#"],"commands":` + cmds + `}]}`
		path := filepath.Join(t.TempDir(), FileName)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := New(Config{Path: path, Logger: discard()}); !errors.Is(err, ErrBadFile) {
			t.Errorf("commands %s: New = %v, want ErrBadFile", cmds, err)
		}
	}
}

func FuzzParseCommandScopes(f *testing.F) {
	for _, s := range []string{"pump-7", "+", "#", "a/b", "", "commands/a", "a+"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		scopes, err := ParseCommandScopes([]string{p})
		if err != nil {
			if !errors.Is(err, ErrBadScope) {
				t.Fatalf("error %v does not wrap ErrBadScope", err)
			}
			return
		}
		if err := checkCommandScopes(scopes); err != nil {
			t.Fatalf("parsed scope %v fails the check: %v", scopes, err)
		}
		if got := commandPatterns(scopes); len(got) != 1 || got[0] != p {
			t.Fatalf("patterns %q, want %q", got, p)
		}
		if p != "+" && p != "#" && (!AllowCommands(scopes, p) || AllowCommands(scopes, p+"x")) {
			t.Fatalf("scope %q does not cover exactly its device", p)
		}
	})
}
