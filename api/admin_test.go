package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/telehub/telehub/internal/auth"
	"github.com/telehub/telehub/storage"
)

const (
	adminTok   = "admin-token-0123456789"
	deviceTok  = "device-token-0123456789"
	watcherTok = "watcher-token-0123456789"
	narrowTok  = "narrow-token-0123456789"
)

// credentialed returns an Auth with an admin, a configured device
// "cfg-dev", a watcher "ops" on everything and a watcher "narrow" on d1's
// humidity, on a credentials file in a fresh directory.
func credentialed(t *testing.T) *auth.Auth {
	t.Helper()
	a, err := auth.New(auth.Config{
		Path:       filepath.Join(t.TempDir(), auth.FileName),
		AdminToken: adminTok,
		Devices:    map[string]string{"cfg-dev": deviceTok},
		Watchers: []auth.WatcherConfig{
			{Name: "ops", Token: watcherTok, Topics: []string{"#"}},
			{Name: "narrow", Token: narrowTok, Topics: []string{"telemetry/d1/hum", "presence/+"}},
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// response is an answer read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
}

func (r response) errorCode(t *testing.T) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	r.decode(t, &e)
	if e.Error.Message == "" {
		t.Fatalf("error without a message: %s", r.body)
	}
	return e.Error.Code
}

// call sends method path with the token as a Bearer header ("" for none).
func call(t *testing.T, srv string, method, path, token, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, srv+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func TestAdminRejections(t *testing.T) {
	a := credentialed(t)
	srv := serve(t, Config{Store: newFake(), Auth: a}).URL
	tooMany := make([]string, auth.MaxScopes+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("telemetry/d%d/#", i)
	}
	manyTopics, _ := json.Marshal(map[string]any{"name": "w", "topics": tooMany})
	cases := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"no token", "GET", "/v1/admin/credentials", "", "", 401, "unauthorized"},
		{"wrong token", "GET", "/v1/admin/credentials", "nope-nope-nope-nope", "", 401, "unauthorized"},
		{"device token", "PUT", "/v1/admin/devices/cfg-dev/token", deviceTok, "", 401, "unauthorized"},
		{"watcher token", "POST", "/v1/admin/watchers", watcherTok, `{"name":"w","topics":["#"]}`, 403, "forbidden"},
		{"admin token in the query", "GET", "/v1/admin/credentials?token=" + adminTok, "", "", 401, "unauthorized"},
		{"put bad device id", "PUT", "/v1/admin/devices/-d/token", adminTok, "", 400, "bad_request"},
		{"put configured device", "PUT", "/v1/admin/devices/cfg-dev/token", adminTok, "", 409, "conflict"},
		{"delete bad device id", "DELETE", "/v1/admin/devices/a%20b/token", adminTok, "", 400, "bad_request"},
		{"delete unknown device", "DELETE", "/v1/admin/devices/d9/token", adminTok, "", 404, "not_found"},
		{"delete configured device", "DELETE", "/v1/admin/devices/cfg-dev/token", adminTok, "", 409, "conflict"},
		{"post bad json", "POST", "/v1/admin/watchers", adminTok, `{"name":`, 400, "bad_request"},
		{"post not an object", "POST", "/v1/admin/watchers", adminTok, `["w"]`, 400, "bad_request"},
		{"post unknown field", "POST", "/v1/admin/watchers", adminTok, `{"name":"w","topics":["#"],"admin":true}`, 400, "bad_request"},
		{"post trailing data", "POST", "/v1/admin/watchers", adminTok, `{"name":"w","topics":["#"]} {}`, 400, "bad_request"},
		{"post duplicate topics", "POST", "/v1/admin/watchers", adminTok, `{"name":"w","topics":["telemetry/dev-a/#"],"topics":["#"]}`, 400, "bad_request"},
		{"post duplicate name", "POST", "/v1/admin/watchers", adminTok, `{"name":"w","name":"ops2","topics":["#"]}`, 400, "bad_request"},
		{"post member in other case", "POST", "/v1/admin/watchers", adminTok, `{"name":"w","topics":["telemetry/dev-a/#"],"Topics":["#"]}`, 400, "bad_request"},
		{"post too large", "POST", "/v1/admin/watchers", adminTok, `{"name":"` + strings.Repeat("w", 70<<10) + `"}`, 413, "bad_request"},
		{"post no name", "POST", "/v1/admin/watchers", adminTok, `{"topics":["#"]}`, 400, "bad_request"},
		{"post bad name", "POST", "/v1/admin/watchers", adminTok, `{"name":"a/b","topics":["#"]}`, 400, "bad_request"},
		{"post no topics", "POST", "/v1/admin/watchers", adminTok, `{"name":"w"}`, 400, "bad_request"},
		{"post bad topic", "POST", "/v1/admin/watchers", adminTok, `{"name":"w","topics":["a/#/b"]}`, 400, "bad_request"},
		{"post too many topics", "POST", "/v1/admin/watchers", adminTok, string(manyTopics), 400, "bad_request"},
		{"post configured watcher", "POST", "/v1/admin/watchers", adminTok, `{"name":"ops","topics":["#"]}`, 409, "conflict"},
		{"delete bad watcher name", "DELETE", "/v1/admin/watchers/.w", adminTok, "", 400, "bad_request"},
		{"delete unknown watcher", "DELETE", "/v1/admin/watchers/w9", adminTok, "", 404, "not_found"},
		{"delete configured watcher", "DELETE", "/v1/admin/watchers/ops", adminTok, "", 409, "conflict"},
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
			if c.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer ") {
				t.Fatalf("401 without a Bearer challenge: %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	if len(a.Watchers()) != 2 || len(a.Devices()) != 1 {
		t.Fatalf("a refused request changed credentials: %v %v", a.Watchers(), a.Devices())
	}
}

func TestChallengeNamesInvalidToken(t *testing.T) {
	srv := serve(t, Config{Store: newFake(), Auth: credentialed(t)}).URL
	if got := call(t, srv, "GET", "/v1/devices", "", "").header.Get("WWW-Authenticate"); got != `Bearer realm="telehub"` {
		t.Fatalf("without a token: %q", got)
	}
	if got := call(t, srv, "GET", "/v1/devices", "wrong-wrong-wrong", "").header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
		t.Fatalf("with a wrong token: %q", got)
	}
}

func TestAdminWithoutAdminToken(t *testing.T) {
	a, err := auth.New(auth.Config{Path: filepath.Join(t.TempDir(), auth.FileName),
		Devices: map[string]string{"d1": deviceTok}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, Config{Store: newFake(), Auth: a}).URL
	r := call(t, srv, "PUT", "/v1/admin/devices/d2/token", "", "")
	if r.status != 401 || !strings.Contains(string(r.body), "no admin token is configured") {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
}

func TestAdminWithoutAuthIsNotServed(t *testing.T) {
	srv := serve(t, Config{Store: newFake()}).URL
	if r := call(t, srv, "GET", "/v1/admin/credentials", adminTok, ""); r.status != 404 {
		t.Fatalf("status %d, want 404 without Auth", r.status)
	}
}

func TestAdminPersistFailureIs500(t *testing.T) {
	path := filepath.Join(t.TempDir(), auth.FileName)
	a, err := auth.New(auth.Config{Path: path, AdminToken: adminTok, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	// A non-empty directory where the file goes: the rename fails.
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, Config{Store: newFake(), Auth: a, Logger: slog.New(slog.DiscardHandler)}).URL
	r := call(t, srv, "PUT", "/v1/admin/devices/d1/token", adminTok, "")
	if r.status != 500 || r.errorCode(t) != "internal" {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if bytes.Contains(r.body, []byte(path)) {
		t.Fatalf("500 answer leaks a server path: %s", r.body)
	}
}

func TestAdminIssueAndRevoke(t *testing.T) {
	a := credentialed(t)
	srv := serve(t, Config{Store: newFake(), Auth: a}).URL

	r := call(t, srv, "PUT", "/v1/admin/devices/d1/token", adminTok, "")
	var dev issuedDevice
	r.decode(t, &dev)
	if r.status != 201 || dev.Device != "d1" || len(dev.Token) != 43 || !a.Device("d1", dev.Token) {
		t.Fatalf("issue device: %d %s", r.status, r.body)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("token answer Cache-Control %q, want no-store", cc)
	}
	var again issuedDevice
	call(t, srv, "PUT", "/v1/admin/devices/d1/token", adminTok, "").decode(t, &again)
	if a.Device("d1", dev.Token) || !a.Device("d1", again.Token) {
		t.Fatal("issuing again did not replace the token")
	}

	r = call(t, srv, "POST", "/v1/admin/watchers", adminTok, `{"name":"pump-app","topics":["telemetry/d1/#"]}`)
	var wat issuedWatcher
	r.decode(t, &wat)
	if r.status != 201 || wat.Name != "pump-app" || len(wat.Token) != 43 || fmt.Sprint(wat.Topics) != "[telemetry/d1/#]" {
		t.Fatalf("issue watcher: %d %s", r.status, r.body)
	}
	if r := call(t, srv, "GET", "/v1/events?topic=telemetry/d1/temp", wat.Token, ""); r.status != 200 {
		t.Fatalf("issued watcher token refused: %d %s", r.status, r.body)
	}

	r = call(t, srv, "GET", "/v1/admin/credentials", adminTok, "")
	var list credentials
	r.decode(t, &list)
	if r.status != 200 || !list.Admin || len(list.Devices) != 2 || len(list.Watchers) != 3 {
		t.Fatalf("credentials: %d %s", r.status, r.body)
	}
	if list.Devices[1].Device != "d1" || list.Devices[1].Source != "api" || list.Devices[1].Created.IsZero() ||
		list.Devices[0].Source != "config" || strings.Contains(string(r.body), `"created":"0001`) {
		t.Fatalf("device listing: %s", r.body)
	}
	for _, secret := range []string{again.Token, wat.Token, adminTok, deviceTok, watcherTok, "sha256", "hash"} {
		if strings.Contains(string(r.body), secret) {
			t.Fatalf("credentials listing shows %q: %s", secret, r.body)
		}
	}

	if r := call(t, srv, "DELETE", "/v1/admin/devices/d1/token", adminTok, ""); r.status != 204 || len(r.body) != 0 {
		t.Fatalf("revoke device: %d %s", r.status, r.body)
	}
	if a.Device("d1", again.Token) {
		t.Fatal("revoked device token still works")
	}
	if r := call(t, srv, "DELETE", "/v1/admin/watchers/pump-app", adminTok, ""); r.status != 204 {
		t.Fatalf("revoke watcher: %d %s", r.status, r.body)
	}
	if r := call(t, srv, "GET", "/v1/events?topic=telemetry/d1/temp", wat.Token, ""); r.status != 401 {
		t.Fatalf("revoked watcher token: %d %s", r.status, r.body)
	}
}

func TestReadEndpointsNeedAToken(t *testing.T) {
	srv := serve(t, Config{Store: newFake(), Auth: credentialed(t)}).URL
	tokens := []struct {
		name, token string
		status      int
	}{
		{"none", "", 401},
		{"wrong", "wrong-wrong-wrong-wrong", 401},
		{"device token", deviceTok, 401},
		{"watcher", watcherTok, 200},
		{"admin", adminTok, 200},
	}
	for _, path := range []string{"/v1/devices", "/v1/devices/d1", "/v1/events"} {
		for _, tk := range tokens {
			t.Run(path+" "+tk.name, func(t *testing.T) {
				r := call(t, srv, "GET", path, tk.token, "")
				if r.status != tk.status {
					t.Fatalf("status %d, want %d: %s", r.status, tk.status, r.body)
				}
				if tk.status == 401 && r.errorCode(t) != "unauthorized" {
					t.Fatalf("body %s", r.body)
				}
			})
		}
		t.Run(path+" query token", func(t *testing.T) {
			sep := "?"
			if strings.Contains(path, "?") {
				sep = "&"
			}
			if r := call(t, srv, "GET", path+sep+"token="+watcherTok, "", ""); r.status != 200 {
				t.Fatalf("?token=: status %d: %s", r.status, r.body)
			}
		})
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if r := call(t, srv, "GET", path, "", ""); r.status != 200 {
			t.Errorf("%s without a token: %d", path, r.status)
		}
	}
}

func TestOpenWithoutCredentials(t *testing.T) {
	a, err := auth.New(auth.Config{Path: filepath.Join(t.TempDir(), auth.FileName), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, Config{Store: newFake(), Auth: a}).URL
	for _, path := range []string{"/v1/devices", "/v1/devices/d1", "/v1/events"} {
		if r := call(t, srv, "GET", path, "", ""); r.status != 200 {
			t.Errorf("%s: %d without credentials configured", path, r.status)
		}
	}
	if r := call(t, srv, "GET", "/v1/admin/credentials", "", ""); r.status != 401 {
		t.Errorf("admin API open without an admin token: %d", r.status)
	}
}

func TestWatcherScopesOnEvents(t *testing.T) {
	srv := serve(t, Config{Store: newFake(), Auth: credentialed(t)}).URL
	cases := []struct {
		name, query string
		status      int
		topics      []string
	}{
		{"within", "?topic=telemetry/d1/hum", 200, []string{"telemetry/d1/hum"}},
		{"two within", "?topic=telemetry/d1/hum&topic=presence/d1", 200, []string{"presence/d1", "telemetry/d1/hum"}},
		{"outside", "?topic=telemetry/d1/temp", 403, nil},
		{"one of two outside", "?topic=telemetry/d1/hum&topic=errors/%23", 403, nil},
		{"wider than a scope", "?topic=telemetry/d1/%23", 403, nil},
		{"no topic means #", "", 403, nil},
		{"bad filter is 400", "?topic=a/%23/b", 400, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := call(t, srv, "GET", "/v1/events"+c.query, narrowTok, "")
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if c.status == 403 && r.errorCode(t) != "forbidden" {
				t.Fatalf("body %s", r.body)
			}
			if c.status != 200 {
				return
			}
			var evs []event
			r.decode(t, &evs)
			var got []string
			for _, e := range evs {
				var d struct{ Topic string }
				_ = json.Unmarshal(e.Data, &d)
				got = append(got, d.Topic)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.topics) {
				t.Fatalf("topics %v, want %v", got, c.topics)
			}
		})
	}
}

func TestWatcherSeesDevicesButOnlyScopedValues(t *testing.T) {
	f := newFake()
	f.states["d1"] = append(f.states["d1"], storage.MetricState{Metric: "hum", State: json.RawMessage(`{"value":40}`)})
	srv := serve(t, Config{Store: f, Auth: credentialed(t)}).URL
	var list []deviceSummary
	call(t, srv, "GET", "/v1/devices", narrowTok, "").decode(t, &list)
	if len(list) != 2 {
		t.Fatalf("a watcher sees %d devices, want all 2", len(list))
	}
	var det deviceDetail
	call(t, srv, "GET", "/v1/devices/d1", narrowTok, "").decode(t, &det)
	if _, ok := det.State["temp"]; ok || det.State["hum"] == nil {
		t.Fatalf("narrow watcher's state %v, want hum only", det.State)
	}
	call(t, srv, "GET", "/v1/devices/d1", adminTok, "").decode(t, &det)
	if len(det.State) != 2 {
		t.Fatalf("admin's state %v, want both metrics", det.State)
	}
}
