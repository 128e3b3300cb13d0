package hub

import (
	"context"
	"net"
	"net/url"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/lxzan/gws"
)

// presenceOf returns the device's entry of GET /v1/devices.
func presenceOf(t *testing.T, h *Hub, id string) map[string]any {
	t.Helper()
	var list []map[string]any
	getJSON(t, h, "/v1/devices", &list)
	for _, d := range list {
		if d["id"] == id {
			return d
		}
	}
	return nil
}

// nextPresence reads the next presence event of a stream.
func nextPresence(t *testing.T, w *sseReader) map[string]any {
	t.Helper()
	for {
		ev := w.next(t)
		if ev.Event == "presence" {
			return ev.Data
		}
	}
}

func expectPresence(t *testing.T, got map[string]any, online bool, reason, transport string) {
	t.Helper()
	if got["online"] != online || got["reason"] != reason || got["transport"] != transport {
		t.Fatalf("presence %v, want online=%v reason=%s transport=%s", got, online, reason, transport)
	}
}

func TestPresenceOverWebSocket(t *testing.T) {
	h := startHub(t, testConfig(t))
	w := openSSE(t, h, url.Values{"topic": {"presence/#"}}, "")

	d := dialDevice(t, h, "p1")
	on := nextPresence(t, w)
	expectPresence(t, on, true, "connect", "ws")
	if on["topic"] != "presence/p1" || on["device"] != "p1" || on["ts"] == nil {
		t.Fatalf("presence event fields: %v", on)
	}
	waitFor(t, "p1 online in /v1/devices", func() bool {
		p := presenceOf(t, h, "p1")
		return p != nil && p["online"] == true && p["transport"] == "ws"
	})

	// A second connection replaces the first: 4000 "replaced", a connect
	// with a higher session, and no offline event from the old one.
	d2 := dialDevice(t, h, "p1")
	if err := d.closeError(t); !isCloseOf(err, 4000, "replaced") {
		t.Fatalf("old connection closed with %v, want 4000 replaced", err)
	}
	again := nextPresence(t, w)
	expectPresence(t, again, true, "connect", "ws")
	if again["session"].(float64) <= on["session"].(float64) {
		t.Fatalf("session did not increase: %v then %v", on["session"], again["session"])
	}

	_ = d2.conn.WriteClose(1000, nil)
	off := nextPresence(t, w)
	expectPresence(t, off, false, "disconnect", "ws")
	if off["session"] != again["session"] {
		t.Fatalf("offline session %v, want %v", off["session"], again["session"])
	}
	waitFor(t, "p1 offline in /v1/devices", func() bool { return presenceOf(t, h, "p1")["online"] == false })
}

func TestPresenceMQTTWillAndTimeout(t *testing.T) {
	cfg := testConfig(t)
	cfg.DeviceTimeout = time.Second
	h := startHub(t, cfg)
	w := openSSE(t, h, url.Values{"topic": {"presence/#"}}, "")

	t.Run("last will", func(t *testing.T) {
		var raw net.Conn
		c := mqttClient(t, h, "will-client", func(o *mqtt.ClientOptions) {
			o.SetWill("devices/w1/status", "offline", 1, false)
			o.SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
				var err error
				raw, err = (&net.Dialer{}).DialContext(context.Background(), "tcp", u.Host)
				return raw, err
			})
		})
		publish(t, c, "devices/w1/telemetry", 1, `{"temp":1}`)
		expectPresence(t, nextPresence(t, w), true, "message", "mqtt")
		_ = raw.Close() // dropped without DISCONNECT: the broker sends the will
		expectPresence(t, nextPresence(t, w), false, "will", "mqtt")
	})

	t.Run("timeout", func(t *testing.T) {
		c := mqttClient(t, h, "quiet-client", func(o *mqtt.ClientOptions) { o.SetKeepAlive(60 * time.Second) })
		publish(t, c, "devices/q1/telemetry", 0, `{"temp":1}`)
		expectPresence(t, nextPresence(t, w), true, "message", "mqtt")
		// Nothing more is heard: offline after the 1s device timeout.
		expectPresence(t, nextPresence(t, w), false, "timeout", "mqtt")
		if p := presenceOf(t, h, "q1"); p["online"] != false {
			t.Fatalf("q1 still online in /v1/devices: %v", p)
		}
	})
}

func TestRestartMarksStaleOnlineDevicesOffline(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a hub as a child process")
	}
	dataDir := t.TempDir()
	child := startChild(t, dataDir)
	s := &streamer{acks: make(chan uint64, 16), closed: make(chan struct{})}
	conn, resp, err := gws.NewClient(s, &gws.ClientOption{Addr: "ws://" + child.http + "/v1/devices/stale/ws"})
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	done := make(chan struct{})
	go func() { defer close(done); conn.ReadLoop() }()
	_ = conn.WriteString(`{"type":"telemetry","seq":1,"values":{"v":1}}`)
	select {
	case <-s.acks:
	case <-time.After(10 * time.Second):
		t.Fatal("no ack")
	}
	child.kill() // the device was online when the hub died
	<-done

	cfg := testConfig(t)
	cfg.DataDir = dataDir
	h := startHub(t, cfg)
	var last map[string]any
	waitFor(t, "the start-up offline event", func() bool {
		evs := events(t, h, "presence/stale")
		if len(evs) == 0 {
			return false
		}
		last = evs[len(evs)-1].Data
		return last["online"] == false
	})
	if p := presenceOf(t, h, "stale"); p["online"] != false {
		t.Fatalf("stale device still online after restart: %v", p)
	}
}
