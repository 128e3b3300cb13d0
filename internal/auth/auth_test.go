package auth

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/telehub/telehub/internal/topic"
)

const (
	adminToken   = "admin-token-0123456789"
	deviceToken  = "device-token-0123456789"
	watcherToken = "watcher-token-0123456789"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newAuth returns an Auth on a credentials file in a fresh directory.
func newAuth(t *testing.T, cfg Config) *Auth {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), FileName)
	}
	if cfg.Logger == nil {
		cfg.Logger = discard()
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func filters(t testing.TB, ss ...string) []topic.Filter {
	t.Helper()
	out := make([]topic.Filter, len(ss))
	for i, s := range ss {
		out[i] = mustFilter(t, s)
	}
	return out
}

func TestNewRejects(t *testing.T) {
	long := strings.Repeat("w", 65)
	tooMany := make([]string, MaxScopes+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("telemetry/d%d/#", i)
	}
	ok := WatcherConfig{Name: "ops", Token: watcherToken, Topics: []string{"#"}}
	tests := []struct {
		name string
		cfg  Config
		is   error
	}{
		{"no path", Config{Path: "-"}, ErrInvalidConfig},
		{"short admin token", Config{AdminToken: "short"}, ErrBadToken},
		{"bad admin hash", Config{AdminToken: "sha256:abc"}, ErrBadToken},
		{"bad device id", Config{Devices: map[string]string{"a/b": deviceToken}}, ErrBadName},
		{"empty device id", Config{Devices: map[string]string{"": deviceToken}}, ErrBadName},
		{"empty device token", Config{Devices: map[string]string{"d1": ""}}, ErrBadToken},
		{"bad watcher name", Config{Watchers: []WatcherConfig{{Name: long, Token: watcherToken, Topics: []string{"#"}}}}, ErrBadName},
		{"short watcher token", Config{Watchers: []WatcherConfig{{Name: "ops", Token: "x", Topics: []string{"#"}}}}, ErrBadToken},
		{"no topics", Config{Watchers: []WatcherConfig{{Name: "ops", Token: watcherToken}}}, ErrBadScope},
		{"too many topics", Config{Watchers: []WatcherConfig{{Name: "ops", Token: watcherToken, Topics: tooMany}}}, ErrBadScope},
		{"bad topic", Config{Watchers: []WatcherConfig{{Name: "ops", Token: watcherToken, Topics: []string{"a/#/b"}}}}, ErrBadScope},
		{"duplicate watcher name", Config{Watchers: []WatcherConfig{ok, {Name: "ops", Token: watcherToken + "x", Topics: []string{"#"}}}}, ErrInvalidConfig},
		{"duplicate watcher token", Config{Watchers: []WatcherConfig{ok, {Name: "ops2", Token: watcherToken, Topics: []string{"#"}}}}, ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			switch cfg.Path {
			case "-":
				cfg.Path = ""
			case "":
				cfg.Path = filepath.Join(t.TempDir(), FileName)
			}
			cfg.Logger = discard()
			_, err := New(cfg)
			if !errors.Is(err, tt.is) || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New = %v, want %v wrapping ErrInvalidConfig", err, tt.is)
			}
			if cfg.Path == "" {
				return // Check does not need one
			}
			if err := cfg.Check(); !errors.Is(err, tt.is) {
				t.Fatalf("Check = %v, want %v", err, tt.is)
			}
		})
	}
}

func TestConfigCredentials(t *testing.T) {
	a := newAuth(t, Config{
		AdminToken: HashPrefix + hashHex(adminToken), // given as its hash
		Devices:    map[string]string{"d1": deviceToken},
		Watchers:   []WatcherConfig{{Name: "ops", Token: watcherToken, Topics: []string{"telemetry/#", "presence/+"}}},
	})
	if !a.Enabled() || !a.HasAdmin() {
		t.Fatal("credentials given, but not enabled")
	}
	checks := []struct {
		name string
		got  bool
		want bool
	}{
		{"admin", a.Admin(adminToken), true},
		{"admin hash is no token", a.Admin(HashPrefix + hashHex(adminToken)), false},
		{"admin wrong", a.Admin(adminToken + "x"), false},
		{"admin empty", a.Admin(""), false},
		{"device", a.Device("d1", deviceToken), true},
		{"device other id", a.Device("d2", deviceToken), false},
		{"device wrong token", a.Device("d1", watcherToken), false},
		{"device empty token", a.Device("d1", ""), false},
		{"device admin token", a.Device("d1", adminToken), false},
		{"admin with device token", a.Admin(deviceToken), false},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	scopes, ok := a.Watcher(watcherToken)
	if !ok || len(scopes) != 2 || scopes[0].String() != "telemetry/#" || scopes[1].String() != "presence/+" {
		t.Fatalf("Watcher = %v, %v", scopes, ok)
	}
	for _, tok := range []string{"", deviceToken, adminToken, watcherToken + "x"} {
		if _, ok := a.Watcher(tok); ok {
			t.Errorf("Watcher(%q) accepted", tok)
		}
	}
}

func hashHex(token string) string {
	d := hashToken(token)
	return d.String()[len(HashPrefix):]
}

func TestNoCredentials(t *testing.T) {
	a := newAuth(t, Config{})
	if a.Enabled() || a.HasAdmin() || a.Admin("") || a.Device("d1", "") {
		t.Fatal("an empty Auth admits something")
	}
	if _, err := os.Stat(a.path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("New wrote a credentials file: %v", err)
	}
}

func TestIssueAndRevokeDevice(t *testing.T) {
	a := newAuth(t, Config{})
	tok, err := a.IssueDevice("d1")
	if err != nil {
		t.Fatal(err)
	}
	if !a.Enabled() || !a.Device("d1", tok) || a.Device("d2", tok) {
		t.Fatal("issued device token does not work as it should")
	}
	tok2, err := a.IssueDevice("d1")
	if err != nil {
		t.Fatal(err)
	}
	if a.Device("d1", tok) || !a.Device("d1", tok2) {
		t.Fatal("a new token did not replace the old one")
	}
	if err := a.RevokeDevice("d1"); err != nil {
		t.Fatal(err)
	}
	if a.Device("d1", tok2) || a.Enabled() {
		t.Fatal("revoked token still works")
	}
	if err := a.RevokeDevice("d1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second revoke = %v, want ErrNotFound", err)
	}
}

func TestIssueAndRevokeWatcher(t *testing.T) {
	a := newAuth(t, Config{})
	tok, err := a.IssueWatcher("ops", filters(t, "telemetry/+/temp"))
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := a.Watcher(tok); !ok || len(s) != 1 || s[0].String() != "telemetry/+/temp" {
		t.Fatalf("Watcher = %v, %v", s, ok)
	}
	tok2, err := a.IssueWatcher("ops", filters(t, "presence/#"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Watcher(tok); ok {
		t.Fatal("a watcher issued again kept its old token")
	}
	if s, ok := a.Watcher(tok2); !ok || s[0].String() != "presence/#" {
		t.Fatalf("Watcher = %v, %v", s, ok)
	}
	if err := a.RevokeWatcher("ops"); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Watcher(tok2); ok {
		t.Fatal("revoked watcher token still works")
	}
	if err := a.RevokeWatcher("ops"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second revoke = %v, want ErrNotFound", err)
	}
}

func TestWatcherScopesAreCopies(t *testing.T) {
	a := newAuth(t, Config{})
	scopes := filters(t, "a/#")
	tok, err := a.IssueWatcher("w", scopes)
	if err != nil {
		t.Fatal(err)
	}
	scopes[0] = mustFilter(t, "#")
	got, _ := a.Watcher(tok)
	got[0] = mustFilter(t, "#")
	if again, _ := a.Watcher(tok); again[0].String() != "a/#" {
		t.Fatalf("scopes changed through a caller's slice: %v", again)
	}
}

func TestChangeRejects(t *testing.T) {
	a := newAuth(t, Config{
		Devices:  map[string]string{"cfg-dev": deviceToken},
		Watchers: []WatcherConfig{{Name: "cfg-w", Token: watcherToken, Topics: []string{"#"}}},
	})
	tooMany := make([]topic.Filter, MaxScopes+1)
	for i := range tooMany {
		tooMany[i] = mustFilter(t, "#")
	}
	tests := []struct {
		name string
		err  error
		is   error
	}{
		{"issue device bad id", second(a.IssueDevice("a b")), ErrBadName},
		{"issue device configured", second(a.IssueDevice("cfg-dev")), ErrConfigured},
		{"revoke device bad id", a.RevokeDevice("#"), ErrBadName},
		{"revoke device configured", a.RevokeDevice("cfg-dev"), ErrConfigured},
		{"revoke device unknown", a.RevokeDevice("nobody"), ErrNotFound},
		{"issue watcher bad name", second(a.IssueWatcher("", filters(t, "#"))), ErrBadName},
		{"issue watcher no scopes", second(a.IssueWatcher("w", nil)), ErrBadScope},
		{"issue watcher too many scopes", second(a.IssueWatcher("w", tooMany)), ErrBadScope},
		{"issue watcher zero filter", second(a.IssueWatcher("w", []topic.Filter{{}})), ErrBadScope},
		{"issue watcher configured", second(a.IssueWatcher("cfg-w", filters(t, "#"))), ErrConfigured},
		{"revoke watcher bad name", a.RevokeWatcher("a/b"), ErrBadName},
		{"revoke watcher configured", a.RevokeWatcher("cfg-w"), ErrConfigured},
		{"revoke watcher unknown", a.RevokeWatcher("nobody"), ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.is) {
				t.Fatalf("got %v, want %v", tt.err, tt.is)
			}
		})
	}
	if !a.Device("cfg-dev", deviceToken) {
		t.Fatal("a refused change altered a configured device")
	}
	if _, ok := a.Watcher(watcherToken); !ok {
		t.Fatal("a refused change altered a configured watcher")
	}
	if _, err := os.Stat(a.path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("refused changes wrote the credentials file: %v", err)
	}
}

func second(_ string, err error) error { return err }

func TestRandomFailure(t *testing.T) {
	a := newAuth(t, Config{})
	a.rand = iotest.ErrReader(errors.New("no entropy"))
	if _, err := a.IssueDevice("d1"); err == nil {
		t.Fatal("IssueDevice succeeded without random bytes")
	}
	if _, err := a.IssueWatcher("w", filters(t, "#")); err == nil {
		t.Fatal("IssueWatcher succeeded without random bytes")
	}
	if a.Enabled() {
		t.Fatal("a failed issue left a credential")
	}
}

func TestPersistenceAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", FileName) // directory made on first write
	now := time.Date(2026, 11, 25, 10, 0, 0, 500, time.UTC)
	a := newAuth(t, Config{Path: path, Devices: map[string]string{"cfg-dev": deviceToken}})
	a.now = func() time.Time { return now }
	dtok, err := a.IssueDevice("d1")
	if err != nil {
		t.Fatal(err)
	}
	wtok, err := a.IssueWatcher("ops", filters(t, "telemetry/#", "errors/+"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.IssueDevice("d2"); err != nil {
		t.Fatal(err)
	}
	if err := a.RevokeDevice("d2"); err != nil {
		t.Fatal(err)
	}

	b := newAuth(t, Config{Path: path, Devices: map[string]string{"cfg-dev": deviceToken}})
	if !b.Device("d1", dtok) || !b.Device("cfg-dev", deviceToken) || b.Device("d2", dtok) {
		t.Fatal("device credentials not the same after reopening")
	}
	if s, ok := b.Watcher(wtok); !ok || len(s) != 2 || s[1].String() != "errors/+" {
		t.Fatalf("watcher after reopening: %v, %v", s, ok)
	}
	wantDevices := []DeviceInfo{
		{Device: "cfg-dev", Source: SourceConfig},
		{Device: "d1", Source: SourceAPI, Created: now.Truncate(time.Second)},
	}
	if got := b.Devices(); fmt.Sprint(got) != fmt.Sprint(wantDevices) {
		t.Fatalf("Devices = %v, want %v", got, wantDevices)
	}
	wantWatchers := []WatcherInfo{{Name: "ops", Topics: []string{"telemetry/#", "errors/+"}, Source: SourceAPI, Created: now.Truncate(time.Second)}}
	if got := b.Watchers(); fmt.Sprint(got) != fmt.Sprint(wantWatchers) {
		t.Fatalf("Watchers = %v, want %v", got, wantWatchers)
	}
}

func TestFileHoldsHashesOnly(t *testing.T) {
	a := newAuth(t, Config{Devices: map[string]string{"cfg-dev": deviceToken}})
	dtok, err := a.IssueDevice("d1")
	if err != nil {
		t.Fatal(err)
	}
	wtok, err := a.IssueWatcher("ops", filters(t, "#"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(a.path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{dtok, wtok, deviceToken} {
		if bytes.Contains(data, []byte(tok)) {
			t.Fatalf("credentials file holds a plain token:\n%s", data)
		}
	}
	for _, tok := range []string{dtok, wtok} {
		if !bytes.Contains(data, []byte(hashToken(tok).String())) {
			t.Fatalf("credentials file lacks the hash of an issued token:\n%s", data)
		}
	}
	if bytes.Contains(data, []byte("cfg-dev")) {
		t.Fatalf("credentials file holds a configured credential:\n%s", data)
	}
	st, err := os.Stat(a.path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file mode %v, want 0600", st.Mode().Perm())
	}
}

func TestAtomicWrite(t *testing.T) {
	a := newAuth(t, Config{})
	tok, err := a.IssueDevice("d1")
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(a.path)
	if err != nil {
		t.Fatal(err)
	}
	a.syncFile = func(f fileSyncer) error {
		_ = f.Close()
		return errors.New("disk full")
	}
	if _, err := a.IssueDevice("d2"); !errors.Is(err, ErrPersist) {
		t.Fatalf("IssueDevice with a failing disk = %v, want ErrPersist", err)
	}
	if err := a.RevokeDevice("d1"); !errors.Is(err, ErrPersist) {
		t.Fatalf("RevokeDevice with a failing disk = %v, want ErrPersist", err)
	}
	if _, err := a.IssueWatcher("w", filters(t, "#")); !errors.Is(err, ErrPersist) {
		t.Fatalf("IssueWatcher with a failing disk = %v, want ErrPersist", err)
	}
	after, err := os.ReadFile(a.path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatalf("a failed write changed the file:\n%s\nto\n%s", before, after)
	}
	if !a.Device("d1", tok) || len(a.Devices()) != 1 || len(a.Watchers()) != 0 {
		t.Fatal("a change that could not be stored took effect")
	}
	entries, err := os.ReadDir(filepath.Dir(a.path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestWriteFailsWhenPathIsADirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	a := newAuth(t, Config{Path: path})
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.IssueDevice("d1"); !errors.Is(err, ErrPersist) {
		t.Fatalf("IssueDevice = %v, want ErrPersist", err)
	}
	if a.Enabled() {
		t.Fatal("a change that could not be stored took effect")
	}
}

func TestBadFile(t *testing.T) {
	h := hashToken(deviceToken).String()
	tests := []struct {
		name, body string
	}{
		{"not JSON", "{"},
		{"trailing data", `{"version":1,"devices":[],"watchers":[]} {}`},
		{"unknown field", `{"version":1,"devices":[],"watchers":[],"admin":"x"}`},
		{"wrong version", `{"version":2,"devices":[],"watchers":[]}`},
		{"bad device id", `{"version":1,"devices":[{"device":"a/b","hash":"` + h + `"}]}`},
		{"duplicate device", `{"version":1,"devices":[{"device":"d","hash":"` + h + `"},{"device":"d","hash":"` + h + `"}]}`},
		{"plain token", `{"version":1,"devices":[{"device":"d","hash":"` + deviceToken + `"}]}`},
		{"short hash", `{"version":1,"devices":[{"device":"d","hash":"sha256:00"}]}`},
		{"bad watcher name", `{"version":1,"watchers":[{"name":"","hash":"` + h + `","topics":["#"]}]}`},
		{"duplicate watcher", `{"version":1,"watchers":[{"name":"w","hash":"` + h + `","topics":["#"]},{"name":"w","hash":"` + h + `","topics":["#"]}]}`},
		{"same watcher token", `{"version":1,"watchers":[{"name":"w","hash":"` + h + `","topics":["#"]},{"name":"v","hash":"` + h + `","topics":["#"]}]}`},
		{"watcher bad hash", `{"version":1,"watchers":[{"name":"w","hash":"md5:00","topics":["#"]}]}`},
		{"watcher no topics", `{"version":1,"watchers":[{"name":"w","hash":"` + h + `","topics":[]}]}`},
		{"watcher bad topic", `{"version":1,"watchers":[{"name":"w","hash":"` + h + `","topics":["#/a"]}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			if err := os.WriteFile(path, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := New(Config{Path: path, Logger: discard()})
			if !errors.Is(err, ErrBadFile) {
				t.Fatalf("New = %v, want ErrBadFile", err)
			}
		})
	}
	t.Run("a directory", func(t *testing.T) {
		_, err := New(Config{Path: t.TempDir(), Logger: discard()})
		if !errors.Is(err, ErrBadFile) {
			t.Fatalf("New = %v, want ErrBadFile", err)
		}
	})
}

func TestConfigWinsOverFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	a := newAuth(t, Config{Path: path})
	apiTok, err := a.IssueDevice("d1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.IssueWatcher("ops", filters(t, "#")); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	b, err := New(Config{
		Path:     path,
		Devices:  map[string]string{"d1": deviceToken},
		Watchers: []WatcherConfig{{Name: "ops", Token: watcherToken, Topics: []string{"presence/#"}}},
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if b.Device("d1", apiTok) || !b.Device("d1", deviceToken) {
		t.Fatal("the file's token was used over the configuration's")
	}
	if s, ok := b.Watcher(watcherToken); !ok || s[0].String() != "presence/#" {
		t.Fatal("the file's watcher was used over the configuration's")
	}
	if !strings.Contains(logs.String(), "also defined in the configuration") {
		t.Fatalf("no warning logged:\n%s", logs.String())
	}
}

func TestWarnsOnOpenFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(path, []byte(`{"version":1,"devices":[],"watchers":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	if _, err := New(Config{Path: path, Logger: slog.New(slog.NewTextHandler(&logs, nil))}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "readable by others") {
		t.Fatalf("no warning about mode 0644:\n%s", logs.String())
	}
}

func TestConcurrentChecksAndChanges(t *testing.T) {
	a := newAuth(t, Config{AdminToken: adminToken})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			id := fmt.Sprintf("d%d", i)
			for range 20 {
				tok, err := a.IssueDevice(id)
				if err != nil {
					t.Error(err)
					return
				}
				if !a.Device(id, tok) {
					t.Errorf("token of %s not valid right after its issue", id)
				}
			}
		})
		wg.Go(func() {
			for range 200 {
				_ = a.Admin(adminToken)
				_, _ = a.Watcher(watcherToken)
				_ = a.Devices()
				_ = a.Enabled()
			}
		})
	}
	wg.Wait()
	if n := len(a.Devices()); n != 4 {
		t.Fatalf("%d devices, want 4", n)
	}
}
