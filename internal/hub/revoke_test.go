package hub

import (
	"encoding/json"
	"errors"
	"net/url"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/lxzan/gws"
)

// closingWatcher is a WebSocket watcher that records how it was closed.
type closingWatcher struct {
	gws.BuiltinEventHandler
	in     chan map[string]any
	closed chan error
}

func (w *closingWatcher) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	var v map[string]any
	_ = json.Unmarshal(m.Bytes(), &v)
	w.in <- v
}

func (w *closingWatcher) OnClose(_ *gws.Conn, err error) { w.closed <- err }

func dialClosingWatcher(t *testing.T, h *Hub, token string) (*closingWatcher, *gws.Conn) {
	t.Helper()
	w := &closingWatcher{in: make(chan map[string]any, 100), closed: make(chan error, 1)}
	conn, resp, err := gws.NewClient(w, &gws.ClientOption{Addr: "ws://" + h.HTTPAddr() + "/v1/stream/ws", RequestHeader: bearer(token)})
	if err != nil {
		t.Fatalf("dial watcher: %v", err)
	}
	_ = resp.Body.Close()
	done := make(chan struct{})
	go func() { defer close(done); conn.ReadLoop() }()
	t.Cleanup(func() { _ = conn.NetConn().Close(); <-done })
	return w, conn
}

func (w *closingWatcher) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case m := <-w.in:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
	}
	return nil
}

// issue issues a credential through the admin API and returns its token.
func issue(t *testing.T, h *Hub, method, path, body string) string {
	t.Helper()
	status, b := call(t, h, method, path, adminTok, body)
	var v struct{ Token string }
	if err := json.Unmarshal(b, &v); status != 201 || err != nil || v.Token == "" {
		t.Fatalf("%s %s: %d %s", method, path, status, b)
	}
	return v.Token
}

func TestRevokingADeviceClosesItsConnections(t *testing.T) {
	h := startHub(t, securedConfig(t))
	wsTok := issue(t, h, "PUT", "/v1/admin/devices/fan-1/token", "")
	mqttTok := issue(t, h, "PUT", "/v1/admin/devices/fan-2/token", "")
	d := dialDeviceWith(t, h, "fan-1", "", bearer(wsTok))
	d.send(t, `{"type":"heartbeat"}`)
	lost := make(chan error, 1)
	o := mqtt.NewClientOptions().AddBroker("tcp://" + h.MQTTAddr()).SetClientID("fan-2").
		SetAutoReconnect(false).SetUsername("fan-2").SetPassword(mqttTok).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { lost <- err })
	m := mqtt.NewClient(o)
	if tok := m.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect fan-2: %v", tok.Error())
	}
	t.Cleanup(func() { m.Disconnect(100) })
	publish(t, m, "devices/fan-2/telemetry", 1, `{"temp":1}`) // acked: the device is in

	if status, body := call(t, h, "DELETE", "/v1/admin/devices/fan-1/token", adminTok, ""); status != 204 {
		t.Fatalf("revoke fan-1: %d %s", status, body)
	}
	expectClose(t, d, 4003)
	select {
	case <-lost:
		t.Fatal("fan-2 disconnected by revoking fan-1")
	default:
	}
	if status, body := call(t, h, "DELETE", "/v1/admin/devices/fan-2/token", adminTok, ""); status != 204 {
		t.Fatalf("revoke fan-2: %d %s", status, body)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("revoked MQTT device still connected")
	}
}

func TestRevokingAWatcherEndsItsStreams(t *testing.T) {
	h := startHub(t, securedConfig(t))
	tok := issue(t, h, "POST", "/v1/admin/watchers", `{"name":"fans","topics":["telemetry/fan-1/#"]}`)
	sse, status := openSSEWith(t, h, url.Values{"topic": {"telemetry/fan-1/temp"}}, tok)
	if status != 200 {
		t.Fatalf("open sse: %d", status)
	}
	w, conn := dialClosingWatcher(t, h, tok)
	if err := conn.WriteString(`{"op":"subscribe","topics":["telemetry/fan-1/#"]}`); err != nil {
		t.Fatal(err)
	}
	if m := w.next(t); m["op"] != "subscribed" {
		t.Fatalf("got %v, want subscribed", m)
	}
	other, status := openSSEWith(t, h, url.Values{"topic": {"#"}}, opsTok)
	if status != 200 {
		t.Fatalf("open ops sse: %d", status)
	}

	if status, body := call(t, h, "DELETE", "/v1/admin/watchers/fans", adminTok, ""); status != 204 {
		t.Fatalf("revoke: %d %s", status, body)
	}
	select {
	case err := <-w.closed:
		var ce *gws.CloseError
		if !errors.As(err, &ce) || ce.Code != 4003 {
			t.Fatalf("ws watcher closed with %v, want 4003", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("revoked ws watcher still open")
	}
	select {
	case <-sse.done:
	case <-time.After(10 * time.Second):
		t.Fatal("revoked sse stream still open")
	}
	select {
	case <-other.done:
		t.Fatal("another watcher's stream ended by the revocation")
	default:
	}
}
