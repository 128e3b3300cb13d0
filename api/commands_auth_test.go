package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/commands"
	"github.com/telehub/telehub/internal/auth"
	"github.com/telehub/telehub/storage"
)

const pumpsTok = "pumps-token-0123456789"

// fakeCommands keeps commands in memory; it is no state machine.
type fakeCommands struct {
	mu       sync.Mutex
	cmds     map[string]bridge.Command
	canceled []string
}

func newFakeCommands(cs ...bridge.Command) *fakeCommands {
	f := &fakeCommands{cmds: make(map[string]bridge.Command)}
	for _, c := range cs {
		f.cmds[c.ID] = c
	}
	return f
}

func (f *fakeCommands) Create(_ context.Context, device string, r commands.Request) (bridge.Command, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := bridge.Command{ID: fmt.Sprintf("%016x", len(f.cmds)+1), Device: device, Name: r.Name, State: bridge.CommandQueued}
	f.cmds[c.ID] = c
	return c, nil
}

func (f *fakeCommands) Get(id string) (bridge.Command, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.cmds[id]
	if !ok {
		return c, storage.ErrCommandNotFound
	}
	return c, nil
}

func (f *fakeCommands) List(device string, _ bridge.CommandState, _ int) ([]bridge.Command, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []bridge.Command
	for _, c := range f.cmds {
		if c.Device == device {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeCommands) Wait(_ context.Context, id string) (bridge.Command, error) { return f.Get(id) }

func (f *fakeCommands) Cancel(_ context.Context, id string) (bridge.Command, error) {
	c, err := f.Get(id)
	if err != nil {
		return c, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.canceled = append(f.canceled, id)
	c.State = bridge.CommandCanceled
	return c, nil
}

func (f *fakeCommands) canceledIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.canceled...)
}

// commanderAuth is credentialed with a watcher "pumps" that may command
// pump-7 and the devices named like nothing else.
func commanderAuth(t *testing.T) *auth.Auth {
	t.Helper()
	a, err := auth.New(auth.Config{
		Path:       filepath.Join(t.TempDir(), auth.FileName),
		AdminToken: adminTok,
		Watchers: []auth.WatcherConfig{
			{Name: "ops", Token: watcherTok, Topics: []string{"#"}},
			{Name: "pumps", Token: pumpsTok, Topics: []string{"commands/pump-7"}, Commands: []string{"pump-7"}},
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestCommandScopeRejections(t *testing.T) {
	const pump7, pump8 = "0000000000000001", "0000000000000002"
	cmds := newFakeCommands(
		bridge.Command{ID: pump7, Device: "pump-7", Name: "x", State: bridge.CommandQueued},
		bridge.Command{ID: pump8, Device: "pump-8", Name: "x", State: bridge.CommandQueued})
	srv := serve(t, Config{Store: newFake(), Auth: commanderAuth(t), Commands: cmds}).URL
	body := `{"name":"ping"}`
	cases := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"create without a token", "POST", "/v1/devices/pump-7/commands", "", body, 401, "unauthorized"},
		{"create with an unknown token", "POST", "/v1/devices/pump-7/commands", "nope-nope-nope-nope", body, 401, "unauthorized"},
		{"create with a device token", "POST", "/v1/devices/pump-7/commands", deviceTok, body, 401, "unauthorized"},
		{"create without a commands scope", "POST", "/v1/devices/pump-7/commands", watcherTok, body, 403, "forbidden"},
		{"list without a commands scope", "GET", "/v1/devices/pump-7/commands", watcherTok, "", 403, "forbidden"},
		{"get without a commands scope", "GET", "/v1/commands/" + pump7, watcherTok, "", 403, "forbidden"},
		{"cancel without a commands scope", "DELETE", "/v1/commands/" + pump7, watcherTok, "", 403, "forbidden"},
		{"create outside the scope", "POST", "/v1/devices/pump-8/commands", pumpsTok, body, 403, "forbidden"},
		{"list outside the scope", "GET", "/v1/devices/pump-8/commands", pumpsTok, "", 403, "forbidden"},
		{"get outside the scope", "GET", "/v1/commands/" + pump8, pumpsTok, "", 403, "forbidden"},
		{"cancel outside the scope", "DELETE", "/v1/commands/" + pump8, pumpsTok, "", 403, "forbidden"},
		{"get unknown", "GET", "/v1/commands/00000000000000aa", pumpsTok, "", 404, "not_found"},
		{"cancel unknown", "DELETE", "/v1/commands/00000000000000aa", pumpsTok, "", 404, "not_found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := call(t, srv, c.method, c.path, c.token, c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if code := r.errorCode(t); code != c.code {
				t.Fatalf("code %q, want %q", code, c.code)
			}
			if c.status == 403 && !strings.Contains(r.header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
				t.Fatalf("403 without insufficient_scope: %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	if got := cmds.canceledIDs(); len(got) != 0 {
		t.Fatalf("refused cancels canceled %v", got)
	}
}

func TestCommandScopeAllows(t *testing.T) {
	const pump7 = "0000000000000001"
	cmds := newFakeCommands(bridge.Command{ID: pump7, Device: "pump-7", Name: "x", State: bridge.CommandQueued})
	srv := serve(t, Config{Store: newFake(), Auth: commanderAuth(t), Commands: cmds}).URL
	for _, tok := range []string{pumpsTok, adminTok} {
		steps := []struct {
			method, path, body string
			status             int
		}{
			{"POST", "/v1/devices/pump-7/commands", `{"name":"ping"}`, 201},
			{"GET", "/v1/devices/pump-7/commands", "", 200},
			{"GET", "/v1/commands/" + pump7, "", 200},
			{"DELETE", "/v1/commands/" + pump7, "", 200},
		}
		for _, s := range steps {
			if r := call(t, srv, s.method, s.path, tok, s.body); r.status != s.status {
				t.Fatalf("%s %s: %d, want %d: %s", s.method, s.path, r.status, s.status, r.body)
			}
		}
	}
	if r := call(t, srv, "POST", "/v1/devices/pump-8/commands", adminTok, `{"name":"ping"}`); r.status != http.StatusCreated {
		t.Fatalf("admin on pump-8: %d %s", r.status, r.body)
	}
}

func TestCommandsOpenWithoutCredentials(t *testing.T) {
	a, err := auth.New(auth.Config{Path: filepath.Join(t.TempDir(), auth.FileName), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, Config{Store: newFake(), Auth: a, Commands: newFakeCommands()}).URL
	if r := call(t, srv, "POST", "/v1/devices/pump-8/commands", "", `{"name":"ping"}`); r.status != http.StatusCreated {
		t.Fatalf("no credentials: %d %s", r.status, r.body)
	}
}

func TestAdminIssuesCommandScope(t *testing.T) {
	srv := serve(t, Config{Store: newFake(), Auth: commanderAuth(t), Commands: newFakeCommands()}).URL
	for _, bad := range []string{`["a/b"]`, `[""]`, `"pump-7"`, `["commands/x"]`} {
		r := call(t, srv, "POST", "/v1/admin/watchers", adminTok, `{"name":"app","topics":["#"],"commands":`+bad+`}`)
		if r.status != http.StatusBadRequest || r.errorCode(t) != "bad_request" {
			t.Fatalf("commands %s: %d %s, want 400", bad, r.status, r.body)
		}
	}
	r := call(t, srv, "POST", "/v1/admin/watchers", adminTok, `{"name":"app","topics":["commands/#"],"commands":["valve-1"]}`)
	var issued struct {
		Token    string   `json:"token"`
		Commands []string `json:"commands"`
	}
	r.decode(t, &issued)
	if r.status != http.StatusCreated || len(issued.Commands) != 1 || issued.Commands[0] != "valve-1" {
		t.Fatalf("issue: %d %s", r.status, r.body)
	}
	if r := call(t, srv, "POST", "/v1/devices/valve-1/commands", issued.Token, `{"name":"open"}`); r.status != http.StatusCreated {
		t.Fatalf("issued token on valve-1: %d %s", r.status, r.body)
	}
	if r := call(t, srv, "POST", "/v1/devices/valve-2/commands", issued.Token, `{"name":"open"}`); r.status != http.StatusForbidden {
		t.Fatalf("issued token on valve-2: %d %s", r.status, r.body)
	}
	r = call(t, srv, "GET", "/v1/admin/credentials", adminTok, "")
	if !strings.Contains(string(r.body), `"commands":["valve-1"]`) || !strings.Contains(string(r.body), `"commands":["pump-7"]`) {
		t.Fatalf("credentials do not list the commands scopes: %s", r.body)
	}
}
