package hub

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/telehub/telehub/internal/config"
)

// Credentials of securedConfig.
const (
	adminTok = "admin-token-0123456789abcdef"
	pumpTok  = "pump-7-token-0123456789abcdef"
	opsTok   = "ops-watcher-token-0123456789"
	pumpsTok = "pumps-watcher-token-0123456789"
)

// securedConfig is testConfig with an admin token, a device token for
// pump-7 and two watchers: ops on everything, pumps on pump-7 only.
func securedConfig(t *testing.T) config.Config {
	t.Helper()
	cfg := testConfig(t)
	cfg.AdminToken = adminTok
	cfg.DeviceTokens = map[string]string{"pump-7": pumpTok}
	cfg.WatcherTokens = []config.WatcherToken{
		{Name: "ops", Token: opsTok, Topics: []string{"#"}},
		{Name: "pumps", Token: pumpsTok, Topics: []string{"telemetry/pump-7/#", "presence/pump-7"}},
	}
	return cfg
}

// call sends an HTTP request with token as a Bearer header ("" for none)
// and returns the status and body.
func call(t *testing.T, h *Hub, method, path, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+h.HTTPAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// upgradeStatus sends a WebSocket upgrade request for path with the
// given headers and returns the answer's status: 101 when upgraded.
func upgradeStatus(t *testing.T, h *Hub, path string, header http.Header) int {
	t.Helper()
	conn, err := net.Dial("tcp", h.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, err := http.NewRequest(http.MethodGet, "http://"+h.HTTPAddr()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("401 on %s without a Bearer challenge", path)
	}
	return resp.StatusCode
}

func bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

// mqttConnect connects a paho client as user/password and returns the
// connect error; a connected client is disconnected at cleanup.
func mqttConnect(t *testing.T, h *Hub, clientID, user, password string) (mqtt.Client, error) {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker("tcp://" + h.MQTTAddr()).SetClientID(clientID).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetUsername(user).SetPassword(password)
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

func TestWebSocketDeviceToken(t *testing.T) {
	h := startHub(t, securedConfig(t))
	refused := []struct {
		name   string
		path   string
		header http.Header
	}{
		{"missing", "/v1/devices/pump-7/ws", nil},
		{"wrong", "/v1/devices/pump-7/ws", bearer(pumpTok + "x")},
		{"wrong in query", "/v1/devices/pump-7/ws?token=nope-nope-nope-nope", nil},
		{"another device's", "/v1/devices/fan-1/ws", bearer(pumpTok)},
		{"a watcher's", "/v1/devices/pump-7/ws", bearer(opsTok)},
		{"the admin's", "/v1/devices/pump-7/ws", bearer(adminTok)},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			if got := upgradeStatus(t, h, c.path, c.header); got != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401 before the upgrade", got)
			}
		})
	}
	for name, dial := range map[string]func() *wsDevice{
		"header": func() *wsDevice { return dialDeviceWith(t, h, "pump-7", "", bearer(pumpTok)) },
		"query":  func() *wsDevice { return dialDeviceWith(t, h, "pump-7", "token="+url.QueryEscape(pumpTok), nil) },
	} {
		t.Run("right token in "+name, func(t *testing.T) {
			d := dial()
			d.send(t, `{"type":"telemetry","values":{"temp":21.5}}`)
			if m := d.next(t); m["type"] != "ack" {
				t.Fatalf("got %v, want an ack", m)
			}
		})
	}
}

// opsEvents returns the retained events matching filter, read with the
// ops watcher's token.
func opsEvents(t *testing.T, h *Hub, filter string) []apiEvent {
	t.Helper()
	status, body := call(t, h, "GET", "/v1/events?limit=10000&topic="+url.QueryEscape(filter), opsTok, "")
	var evs []apiEvent
	if err := json.Unmarshal(body, &evs); status != 200 || err != nil {
		t.Fatalf("GET /v1/events: %d %s", status, body)
	}
	return evs
}

func TestMQTTDeviceCredentials(t *testing.T) {
	h := startHub(t, securedConfig(t))
	for _, c := range []struct{ name, user, password string }{
		{"wrong password", "pump-7", pumpTok + "x"},
		{"no credentials", "", ""},
		{"another device's password", "fan-1", pumpTok},
		{"watcher token", "pump-7", opsTok},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := mqttConnect(t, h, "c-"+strings.ReplaceAll(c.name, " ", "-"), c.user, c.password); err == nil {
				t.Fatal("CONNACK accepted")
			}
		})
	}

	cl, err := mqttConnect(t, h, "pump-7", "pump-7", pumpTok)
	if err != nil {
		t.Fatalf("right credentials refused: %v", err)
	}
	answers := subscribe(t, cl, "devices/pump-7/errors")
	publish(t, cl, "devices/pump-7/telemetry", 1, `{"temp":20}`)
	waitFor(t, "pump-7's reading", func() bool { return len(opsEvents(t, h, "telemetry/pump-7/temp")) == 1 })

	publish(t, cl, "devices/fan-1/telemetry", 1, `{"temp":99}`)
	select {
	case m := <-answers:
		var a struct{ Code, Topic string }
		if err := json.Unmarshal(m.Payload(), &a); err != nil || a.Code != "forbidden" || a.Topic != "devices/fan-1/telemetry" {
			t.Fatalf("error answer %s, want forbidden for devices/fan-1/telemetry", m.Payload())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no error answer for a publish under another device's topic")
	}
	waitFor(t, "the forbidden event", func() bool { return len(opsEvents(t, h, "errors/pump-7")) == 1 })
	if evs := opsEvents(t, h, "telemetry/fan-1/#"); len(evs) != 0 {
		t.Fatalf("a publish under another device's topic was stored: %v", evs)
	}
}

// openSSEWith opens /v1/stream?query with token in the Authorization
// header ("" for none) and returns the reader, or the refusal's status.
func openSSEWith(t *testing.T, h *Hub, query url.Values, token string) (*sseReader, int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+h.HTTPAddr()+"/v1/stream?"+query.Encode(), nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("open stream: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, resp.StatusCode
	}
	r := &sseReader{resp: resp, events: make(chan sseEvent, 1000), done: make(chan struct{}), cancel: cancel}
	go r.read()
	t.Cleanup(r.close)
	return r, http.StatusOK
}

func TestWatcherScopes(t *testing.T) {
	h := startHub(t, securedConfig(t))
	cases := []struct {
		name   string
		query  url.Values
		token  string
		status int
	}{
		{"no token", url.Values{"topic": {"telemetry/pump-7/#"}}, "", 401},
		{"device token", url.Values{"topic": {"telemetry/pump-7/#"}}, pumpTok, 401},
		{"outside the scopes", url.Values{"topic": {"telemetry/+/temp"}}, pumpsTok, 403},
		{"default # outside the scopes", nil, pumpsTok, 403},
		{"within the scopes", url.Values{"topic": {"telemetry/pump-7/temp", "presence/pump-7"}}, pumpsTok, 200},
		{"token in the query", url.Values{"topic": {"telemetry/pump-7/#"}, "token": {pumpsTok}}, "", 200},
		{"watcher on everything", nil, opsTok, 200},
		{"admin", nil, adminTok, 200},
	}
	for _, c := range cases {
		t.Run("sse "+c.name, func(t *testing.T) {
			if _, status := openSSEWith(t, h, c.query, c.token); status != c.status {
				t.Fatalf("status %d, want %d", status, c.status)
			}
		})
	}

	sse, _ := openSSEWith(t, h, url.Values{"topic": {"telemetry/pump-7/#"}}, pumpsTok)
	if got := upgradeStatus(t, h, "/v1/stream/ws", nil); got != http.StatusUnauthorized {
		t.Fatalf("ws watcher without a token: status %d, want 401", got)
	}
	w := dialWatcherWith(t, h, bearer(pumpsTok))
	_ = w.conn.WriteString(`{"op":"subscribe","topics":["telemetry/+/temp"]}`)
	if m := w.next(t); m["op"] != "error" {
		t.Fatalf("subscribe outside the scopes: %v, want an error", m)
	}
	_ = w.conn.WriteString(`{"op":"subscribe","topics":["telemetry/pump-7/temp"]}`)
	if m := w.next(t); m["op"] != "subscribed" {
		t.Fatalf("subscribe within the scopes: %v", m)
	}

	d := dialDeviceWith(t, h, "pump-7", "", bearer(pumpTok))
	d.send(t, `{"type":"telemetry","seq":1,"values":{"temp":21.5}}`)
	d.next(t)
	if ev := sse.next(t); ev.Data["topic"] != "telemetry/pump-7/temp" {
		t.Fatalf("sse watcher got %+v", ev)
	}
	if m := w.next(t); m["op"] != "event" {
		t.Fatalf("ws watcher got %v", m)
	}
}

func TestReadEndpointsAndOpenEndpoints(t *testing.T) {
	h := startHub(t, securedConfig(t))
	for _, path := range []string{"/v1/devices", "/v1/devices/pump-7", "/v1/events"} {
		if status, _ := call(t, h, "GET", path, "", ""); status != 401 {
			t.Errorf("%s without a token: %d, want 401", path, status)
		}
	}
	if status, _ := call(t, h, "GET", "/v1/devices", opsTok, ""); status != 200 {
		t.Errorf("/v1/devices with a watcher token: %d", status)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/", "/assets/app.js"} {
		if status, _ := call(t, h, "GET", path, "", ""); status != 200 {
			t.Errorf("%s without a token: %d, want 200", path, status)
		}
	}
}

func TestAdminIssuedCredentials(t *testing.T) {
	cfg := securedConfig(t)
	h := startHub(t, cfg)

	status, body := call(t, h, "PUT", "/v1/admin/devices/fan-1/token", adminTok, "")
	var dev struct{ Device, Token string }
	if err := json.Unmarshal(body, &dev); status != 201 || err != nil || dev.Device != "fan-1" || dev.Token == "" {
		t.Fatalf("issue device token: %d %s", status, body)
	}
	d := dialDeviceWith(t, h, "fan-1", "", bearer(dev.Token))
	d.send(t, `{"type":"heartbeat"}`)
	if _, err := mqttConnect(t, h, "fan-1", "fan-1", dev.Token); err != nil {
		t.Fatalf("issued token refused over MQTT: %v", err)
	}

	status, body = call(t, h, "POST", "/v1/admin/watchers", adminTok, `{"name":"fans","topics":["telemetry/fan-1/#"]}`)
	var wat struct{ Name, Token string }
	if err := json.Unmarshal(body, &wat); status != 201 || err != nil || wat.Token == "" {
		t.Fatalf("issue watcher token: %d %s", status, body)
	}
	if _, status := openSSEWith(t, h, url.Values{"topic": {"telemetry/fan-1/temp"}}, wat.Token); status != 200 {
		t.Fatalf("issued watcher token refused: %d", status)
	}

	data, err := os.ReadFile(filepath.Join(cfg.DataDir, "credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{dev.Token, wat.Token} {
		if bytes.Contains(data, []byte(tok)) {
			t.Fatalf("credentials file holds a plain token:\n%s", data)
		}
	}
	if !bytes.Contains(data, []byte("sha256:")) {
		t.Fatalf("credentials file holds no hash:\n%s", data)
	}
	if st, err := os.Stat(filepath.Join(cfg.DataDir, "credentials.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file mode: %v %v", st.Mode(), err)
	}

	if status, body := call(t, h, "DELETE", "/v1/admin/devices/fan-1/token", adminTok, ""); status != 204 {
		t.Fatalf("revoke device token: %d %s", status, body)
	}
	if got := upgradeStatus(t, h, "/v1/devices/fan-1/ws", bearer(dev.Token)); got != 401 {
		t.Fatalf("revoked device token over WebSocket: %d, want 401", got)
	}
	if _, err := mqttConnect(t, h, "fan-1-again", "fan-1", dev.Token); err == nil {
		t.Fatal("revoked device token accepted over MQTT")
	}
	if status, body := call(t, h, "DELETE", "/v1/admin/watchers/fans", adminTok, ""); status != 204 {
		t.Fatalf("revoke watcher token: %d %s", status, body)
	}
	if _, status := openSSEWith(t, h, url.Values{"topic": {"telemetry/fan-1/temp"}}, wat.Token); status != 401 {
		t.Fatalf("revoked watcher token: %d, want 401", status)
	}
}

func TestIssuedCredentialsSurviveRestart(t *testing.T) {
	cfg := securedConfig(t)
	h := startHub(t, cfg)
	_, body := call(t, h, "PUT", "/v1/admin/devices/fan-1/token", adminTok, "")
	var dev struct{ Token string }
	if err := json.Unmarshal(body, &dev); err != nil {
		t.Fatal(err)
	}
	stopHub(t, h)

	h2 := startHub(t, cfg)
	if got := upgradeStatus(t, h2, "/v1/devices/fan-1/ws", bearer(dev.Token)); got != http.StatusSwitchingProtocols {
		t.Fatalf("issued token after a restart: status %d, want 101", got)
	}
}

// Listening beyond loopback needs credentials or --insecure. The hub
// binds every interface here; the test talks to it over loopback only.
func TestCredentialsAllowListeningBeyondLoopback(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--http-addr", "0.0.0.0:0", "--mqtt-addr", "127.0.0.1:0", "--data-dir", dir}
	if _, err := config.Load(args, noEnv, io.Discard); !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("without credentials: %v, want ErrInvalid", err)
	}
	cfg, err := config.Load(append(args, "--admin-token", adminTok), noEnv, io.Discard)
	if err != nil {
		t.Fatalf("with an admin token: %v", err)
	}
	h := startHub(t, cfg)
	_, port, _ := net.SplitHostPort(h.HTTPAddr())
	resp, err := http.Get("http://127.0.0.1:" + port + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/healthz: %d", resp.StatusCode)
	}
}

// A credentials file in the data directory lets the configuration pass;
// the hub then checks it holds credentials indeed.
func TestCredentialsFileAloneAllowsListeningBeyondLoopback(t *testing.T) {
	cfg := testConfig(t)
	cfg.AdminToken = adminTok
	h := startHub(t, cfg)
	if status, body := call(t, h, "PUT", "/v1/admin/devices/fan-1/token", adminTok, ""); status != 201 {
		t.Fatalf("issue: %d %s", status, body)
	}
	stopHub(t, h)

	cfg.AdminToken = ""
	cfg.HTTPAddr = "0.0.0.0:0"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate with a credentials file: %v", err)
	}
	h2, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New with issued credentials only: %v", err)
	}
	if err := h2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	empty := testConfig(t)
	empty.HTTPAddr = "0.0.0.0:0"
	path := filepath.Join(empty.DataDir, "credentials.json")
	if err := os.WriteFile(path, []byte(`{"version":1,"devices":[],"watchers":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(empty, testLogger(t)); !errors.Is(err, config.ErrInvalid) || !strings.Contains(fmt.Sprint(err), "--insecure") {
		t.Fatalf("New with an empty credentials file: %v, want a refusal", err)
	}
}

// The dashboard on a hub with credentials: opened as /?token=…, it passes
// the token on to its REST requests and its EventSource.
func TestDashboardWithToken(t *testing.T) {
	path := chromiumPath()
	if path == "" {
		requireExternal(t, "chromium")
	}
	h := startHub(t, securedConfig(t))
	d := dialDeviceWith(t, h, "pump-7", "", bearer(pumpTok))
	d.send(t, `{"type":"telemetry","seq":1,"values":{"temp":21.5}}`)
	d.next(t)

	ctx := browser(t, path)
	errs := watchConsole(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+h.HTTPAddr()+"/?token="+url.QueryEscape(opsTok))); err != nil {
		t.Fatalf("open dashboard: %v", err)
	}
	waitDOM(t, ctx, "its stream as live", `document.querySelector('#conn').dataset.state === 'live'`)
	waitDOM(t, ctx, "pump-7 from REST", `!!document.querySelector('#device-rows tr[data-device="pump-7"]')`)
	d.send(t, `{"type":"telemetry","seq":2,"values":{"temp":42.25}}`)
	d.next(t)
	waitDOM(t, ctx, "the live value 42.25", `document.querySelector('tr[data-device="pump-7"] [data-metric="temp"] .v')?.textContent.includes('42.25')`)
	// The commands panel asks for pump-7's commands, which a watcher token
	// may not read: the hub's 403 is the panel's answer, not a page error.
	errs.check(t, "/v1/devices/pump-7/commands")
}
