package hub

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/telehub/telehub/internal/config"
)

// pumpCtlTok may watch and command pump-7 only.
const pumpCtlTok = "pump-ctl-token-0123456789"

// commanderConfig is securedConfig with a watcher pump-ctl that watches
// pump-7's commands and telemetry and may command pump-7.
func commanderConfig(t *testing.T) config.Config {
	t.Helper()
	cfg := securedConfig(t)
	cfg.WatcherTokens = append(cfg.WatcherTokens, config.WatcherToken{
		Name: "pump-ctl", Token: pumpCtlTok,
		Topics: []string{"commands/pump-7", "telemetry/pump-7/#"}, Commands: []string{"pump-7"},
	})
	return cfg
}

// createAs creates a command for device with token and returns it.
func createAs(t *testing.T, h *Hub, token, device string) command {
	t.Helper()
	st, body := call(t, h, http.MethodPost, "/v1/devices/"+device+"/commands", token, `{"name":"ping"}`)
	var c command
	if err := json.Unmarshal(body, &c); st != http.StatusCreated || err != nil {
		t.Fatalf("create for %s: %d %s", device, st, body)
	}
	return c
}

func TestCommandScopeOverHTTP(t *testing.T) {
	h := startHub(t, commanderConfig(t))
	pump8 := createAs(t, h, adminTok, "pump-8")
	cases := []struct {
		name, method, path, token string
		status                    int
	}{
		{"create without a token", "POST", "/v1/devices/pump-7/commands", "", 401},
		{"create with a device token", "POST", "/v1/devices/pump-7/commands", pumpTok, 401},
		{"create without a commands scope", "POST", "/v1/devices/pump-7/commands", opsTok, 403},
		{"create outside the scope", "POST", "/v1/devices/pump-8/commands", pumpCtlTok, 403},
		{"list outside the scope", "GET", "/v1/devices/pump-8/commands", pumpCtlTok, 403},
		{"get outside the scope", "GET", "/v1/commands/" + pump8.ID, pumpCtlTok, 403},
		{"cancel outside the scope", "DELETE", "/v1/commands/" + pump8.ID, pumpCtlTok, 403},
		{"get unknown", "GET", "/v1/commands/00000000000000aa", pumpCtlTok, 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, "http://"+h.HTTPAddr()+c.path, strings.NewReader(`{"name":"ping"}`))
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			if c.status == 403 && !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
				t.Fatalf("403 without insufficient_scope: %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	if st, body := call(t, h, http.MethodGet, "/v1/commands/"+pump8.ID, adminTok, ""); st != 200 || !strings.Contains(string(body), `"queued"`) {
		t.Fatalf("pump-8's command after refused cancels: %d %s, want queued", st, body)
	}

	mine := createAs(t, h, pumpCtlTok, "pump-7")
	if st, body := call(t, h, http.MethodGet, "/v1/devices/pump-7/commands", pumpCtlTok, ""); st != 200 || !strings.Contains(string(body), mine.ID) {
		t.Fatalf("list pump-7: %d %s", st, body)
	}
	if st, body := call(t, h, http.MethodGet, "/v1/commands/"+mine.ID, pumpCtlTok, ""); st != 200 {
		t.Fatalf("get pump-7's command: %d %s", st, body)
	}
	if st, body := call(t, h, http.MethodDelete, "/v1/commands/"+mine.ID, pumpCtlTok, ""); st != 200 || !strings.Contains(string(body), `"canceled"`) {
		t.Fatalf("cancel pump-7's command: %d %s", st, body)
	}
}

func TestCommandEventsOnlyWithinWatcherScopes(t *testing.T) {
	h := startHub(t, commanderConfig(t))
	for _, c := range []struct {
		token, topic string
		status       int
	}{
		{pumpsTok, "commands/#", 403},   // telemetry and presence of pump-7 only
		{pumpCtlTok, "commands/#", 403}, // commands/pump-7 only
		{pumpCtlTok, "commands/+", 403},
		{pumpCtlTok, "commands/pump-8", 403},
		{pumpCtlTok, "commands/pump-7", 200},
	} {
		r, st := openSSEWith(t, h, url.Values{"topic": {c.topic}}, c.token)
		if st != c.status {
			t.Fatalf("SSE %s with %s: %d, want %d", c.topic, c.token, st, c.status)
		}
		if r != nil {
			r.close()
		}
		if st, body := call(t, h, http.MethodGet, "/v1/events?topic="+url.QueryEscape(c.topic), c.token, ""); st != c.status {
			t.Fatalf("/v1/events %s with %s: %d %s, want %d", c.topic, c.token, st, body, c.status)
		}
	}
	sse, _ := openSSEWith(t, h, url.Values{"topic": {"commands/pump-7"}}, pumpCtlTok)
	other := createAs(t, h, adminTok, "pump-8")
	mine := createAs(t, h, adminTok, "pump-7")
	if e := sse.next(t); e.Event != "command" || e.Data["id"] != mine.ID {
		t.Fatalf("pump-ctl's stream got %v, want pump-7's command %s first (pump-8's %s is outside)", e, mine.ID, other.ID)
	}
	st, body := call(t, h, http.MethodGet, "/v1/events?topic=commands/pump-7", pumpCtlTok, "")
	var evs []apiEvent
	if err := json.Unmarshal(body, &evs); st != 200 || err != nil {
		t.Fatalf("/v1/events: %d %s", st, body)
	}
	if len(evs) != 1 || evs[0].Data["id"] != mine.ID {
		t.Fatalf("/v1/events for pump-ctl: %v, want only %s", evs, mine.ID)
	}
	if evs := opsEvents(t, h, "commands/#"); len(evs) != 2 {
		t.Fatalf("ops sees %d command events, want 2", len(evs))
	}
}

func TestAdminIssuesACommandScope(t *testing.T) {
	h := startHub(t, commanderConfig(t))
	for _, bad := range []string{`["a/b"]`, `["commands/#"]`, `"pump-9"`} {
		if st, body := call(t, h, http.MethodPost, "/v1/admin/watchers", adminTok, `{"name":"app","topics":["#"],"commands":`+bad+`}`); st != http.StatusBadRequest {
			t.Fatalf("commands %s: %d %s, want 400", bad, st, body)
		}
	}
	if st, _ := call(t, h, http.MethodPost, "/v1/admin/watchers", pumpCtlTok, `{"name":"app","topics":["#"],"commands":["+"]}`); st != http.StatusForbidden {
		t.Fatalf("a commanding watcher issued a token: %d", st)
	}
	st, body := call(t, h, http.MethodPost, "/v1/admin/watchers", adminTok, `{"name":"app","topics":["commands/pump-9"],"commands":["pump-9"]}`)
	var issued struct{ Token string }
	if err := json.Unmarshal(body, &issued); st != http.StatusCreated || err != nil {
		t.Fatalf("issue: %d %s", st, body)
	}
	createAs(t, h, issued.Token, "pump-9")
	if st, _ := call(t, h, http.MethodPost, "/v1/devices/pump-7/commands", issued.Token, `{"name":"ping"}`); st != http.StatusForbidden {
		t.Fatalf("issued token on pump-7: %d, want 403", st)
	}
	if st, body := call(t, h, http.MethodGet, "/v1/admin/credentials", adminTok, ""); st != 200 || !strings.Contains(string(body), `"commands":["pump-9"]`) {
		t.Fatalf("credentials: %d %s", st, body)
	}
}
