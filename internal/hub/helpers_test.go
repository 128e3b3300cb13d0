package hub

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/lxzan/gws"

	"github.com/telehub/telehub/internal/config"
)

// testConfig is a hub on loopback port 0 with its data in a temp dir.
func testConfig(t *testing.T) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.MQTTAddr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	return cfg
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startHub starts a hub on cfg and shuts it down when the test ends.
func startHub(t *testing.T, cfg config.Config) *Hub {
	t.Helper()
	h, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("hub.New: %v", err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("hub.Start: %v", err)
	}
	t.Cleanup(func() { stopHub(t, h) })
	return h
}

func stopHub(t *testing.T, h *Hub) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Errorf("hub.Shutdown: %v", err)
	}
}

// wsDevice is a device connected over WebSocket with a real gws client.
type wsDevice struct {
	gws.BuiltinEventHandler
	conn   *gws.Conn
	in     chan map[string]any
	closed chan error
	done   chan struct{}
}

func (d *wsDevice) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	var v map[string]any
	if err := json.Unmarshal(m.Bytes(), &v); err != nil {
		v = map[string]any{"unparsed": m.Data.String()}
	}
	d.in <- v
}

func (d *wsDevice) OnClose(c *gws.Conn, err error) { d.closed <- err }

func dialDevice(t *testing.T, h *Hub, id string) *wsDevice {
	t.Helper()
	return dialDeviceWith(t, h, id, "", nil)
}

// dialDeviceWith connects a WebSocket device with a token in header or
// query; dialDevice connects without one.
func dialDeviceWith(t *testing.T, h *Hub, id, query string, header http.Header) *wsDevice {
	t.Helper()
	return dialDeviceAt(t, h.HTTPAddr(), id, query, header)
}

// dialDeviceAt is dialDeviceWith for the hub whose HTTP listener is at
// hostPort (a hub in a child process).
func dialDeviceAt(t *testing.T, hostPort, id, query string, header http.Header) *wsDevice {
	t.Helper()
	d := &wsDevice{in: make(chan map[string]any, 1024), closed: make(chan error, 1), done: make(chan struct{})}
	addr := "ws://" + hostPort + "/v1/devices/" + url.PathEscape(id) + "/ws"
	if query != "" {
		addr += "?" + query
	}
	conn, resp, err := gws.NewClient(d, &gws.ClientOption{Addr: addr, RequestHeader: header})
	if err != nil {
		t.Fatalf("dial device %s: %v", id, err)
	}
	_ = resp.Body.Close()
	d.conn = conn
	go func() { defer close(d.done); conn.ReadLoop() }()
	t.Cleanup(func() {
		_ = conn.WriteClose(1000, nil)
		<-d.done
	})
	return d
}

func (d *wsDevice) send(t *testing.T, frame string) {
	t.Helper()
	if err := d.conn.WriteString(frame); err != nil {
		t.Fatalf("send %s: %v", frame, err)
	}
}

// closeError waits for the hub to close d's connection and returns how,
// failing after a generous guard timeout.
func (d *wsDevice) closeError(t *testing.T) error {
	t.Helper()
	select {
	case err := <-d.closed:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the device's connection was not closed")
	}
	return nil
}

// isCloseOf reports whether err is a close frame with code and reason.
func isCloseOf(err error, code uint16, reason string) bool {
	var ce *gws.CloseError
	return errors.As(err, &ce) && ce.Code == code && string(ce.Reason) == reason
}

// next returns the next message from the hub, failing after a generous
// guard timeout.
func (d *wsDevice) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case m := <-d.in:
		return m
	case err := <-d.closed:
		t.Fatalf("connection closed while waiting for a message: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no message from the hub within 10s")
	}
	return nil
}

// mqttClient connects a real paho client to the embedded broker.
func mqttClient(t *testing.T, h *Hub, id string, opts func(*mqtt.ClientOptions)) mqtt.Client {
	t.Helper()
	return mqttClientAt(t, h.MQTTAddr(), id, opts)
}

// mqttClientAt is mqttClient for the broker at hostPort.
func mqttClientAt(t *testing.T, hostPort, id string, opts func(*mqtt.ClientOptions)) mqtt.Client {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker("tcp://" + hostPort).SetClientID(id).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	if opts != nil {
		opts(o)
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func publish(t *testing.T, c mqtt.Client, topic string, qos byte, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// subscribe collects messages on topic.
func subscribe(t *testing.T, c mqtt.Client, topic string) <-chan mqtt.Message {
	t.Helper()
	ch := make(chan mqtt.Message, 64)
	tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) { ch <- m })
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", topic, tok.Error())
	}
	return ch
}

// apiEvent is one element of GET /v1/events.
type apiEvent struct {
	ID    string         `json:"id"`
	Event string         `json:"event"`
	Data  map[string]any `json:"data"`
}

func getJSON(t *testing.T, h *Hub, path string, v any) int {
	t.Helper()
	resp, err := http.Get("http://" + h.HTTPAddr() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, body)
		}
	}
	return resp.StatusCode
}

// events returns every retained event matching filter, paging through
// /v1/events.
func events(t *testing.T, h *Hub, filter string) []apiEvent {
	t.Helper()
	return eventsAt(t, h.HTTPAddr(), filter)
}

// eventsAt is events for the hub at addr (host:port).
func eventsAt(t *testing.T, addr, filter string) []apiEvent {
	t.Helper()
	var all []apiEvent
	after := ""
	for {
		q := url.Values{"topic": {filter}, "limit": {"10000"}}
		if after != "" {
			q.Set("after", after)
		}
		resp, err := http.Get("http://" + addr + "/v1/events?" + q.Encode())
		if err != nil {
			t.Fatalf("GET /v1/events: %v", err)
		}
		var page []apiEvent
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			t.Fatalf("GET /v1/events: status %d, %v", resp.StatusCode, err)
		}
		all = append(all, page...)
		if len(page) < 10000 {
			return all
		}
		after = page[len(page)-1].ID
	}
}

// waitFor polls cond until it holds, failing after a generous guard.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// requireExternal skips a test whose external program is missing, or fails
// it when TELEHUB_REQUIRE_EXTERNAL=1 (as in CI).
func requireExternal(t *testing.T, program string) {
	t.Helper()
	if os.Getenv("TELEHUB_REQUIRE_EXTERNAL") == "1" {
		t.Fatalf("%s is not installed and TELEHUB_REQUIRE_EXTERNAL=1", program)
	}
	t.Skipf("%s is not installed: skipping (CI installs it)", program)
}
