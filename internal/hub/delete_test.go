package hub

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// committed waits until everything submitted so far is stored: a reading
// of another device is acked only after the writes queued before it.
func committed(t *testing.T, h *Hub) {
	t.Helper()
	d := dialDevice(t, h, "barrier")
	d.send(t, `{"type":"telemetry","values":{"x":1}}`)
	if m := d.next(t); m["type"] != "ack" {
		t.Fatalf("barrier: %v", m)
	}
}

func deviceStatus(t *testing.T, h *Hub, id string) int {
	t.Helper()
	return getJSON(t, h, "/v1/devices/"+id, nil)
}

func TestDeleteWebSocketDevice(t *testing.T) {
	h := startHub(t, testConfig(t))
	d := dialDevice(t, h, "dev-del")
	d.send(t, `{"type":"telemetry","seq":5,"values":{"temp":21.5}}`)
	if m := d.next(t); m["type"] != "ack" {
		t.Fatalf("first reading: %v", m)
	}
	if status, body := call(t, h, "DELETE", "/v1/devices/dev-del", "", ""); status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", status, body)
	}
	if err := d.closeError(t); !isCloseOf(err, 4001, "deleted") {
		t.Fatalf("closed with %v, want 4001 deleted", err)
	}
	waitFor(t, "the hub to drop the connection", func() bool { return h.wsDev.Connected() == 0 })
	committed(t, h)
	if status := deviceStatus(t, h, "dev-del"); status != http.StatusNotFound {
		t.Fatalf("GET after DELETE: %d, want 404 (no presence event recorded it again)", status)
	}
	if evs := events(t, h, "telemetry/dev-del/#"); len(evs) != 1 {
		t.Fatalf("%d retained events of the deleted device, want 1: they stay until retention", len(evs))
	}
	if status, _ := call(t, h, "DELETE", "/v1/devices/dev-del", "", ""); status != http.StatusNotFound {
		t.Fatalf("second DELETE: %d, want 404", status)
	}

	// A later message creates the device anew; its old seq is no duplicate.
	again := dialDevice(t, h, "dev-del")
	again.send(t, `{"type":"telemetry","seq":5,"values":{"hum":40}}`)
	if m := again.next(t); m["type"] != "ack" {
		t.Fatalf("reading after the delete: %v", m)
	}
	var dev struct {
		Online bool                      `json:"online"`
		State  map[string]map[string]any `json:"state"`
	}
	if status := getJSON(t, h, "/v1/devices/dev-del", &dev); status != http.StatusOK || !dev.Online ||
		len(dev.State) != 1 || dev.State["hum"] == nil {
		t.Fatalf("device anew: %d %+v", status, dev)
	}
	if evs := events(t, h, "telemetry/dev-del/#"); len(evs) != 2 {
		t.Fatalf("%d events, want 2: the resent seq was stored as new", len(evs))
	}
}

func TestDeleteMQTTDevice(t *testing.T) {
	h := startHub(t, testConfig(t))
	lost := make(chan error, 1)
	c := mqttClient(t, h, "mq-del", func(o *mqtt.ClientOptions) {
		o.SetConnectionLostHandler(func(_ mqtt.Client, err error) { lost <- err })
		o.SetWill("devices/mq-del/telemetry", `{"alive":0}`, 1, false) // not published: it would create the device anew
	})
	publish(t, c, "devices/mq-del/telemetry", 1, `{"temp":21.5}`)
	if status := deviceStatus(t, h, "mq-del"); status != http.StatusOK {
		t.Fatalf("GET before DELETE: %d", status)
	}
	if status, body := call(t, h, "DELETE", "/v1/devices/mq-del", "", ""); status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", status, body)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the device's MQTT connection was not closed")
	}
	waitFor(t, "the broker to drop the connection", func() bool { return !c.IsConnected() })
	// The session's end publishes a will before it counts the device gone:
	// a will would be committed before the barrier.
	waitFor(t, "the session to end", func() bool {
		return testutil.ToFloat64(h.metrics.DevicesConnected.WithLabelValues("mqtt")) == 0
	})
	committed(t, h)
	if status := deviceStatus(t, h, "mq-del"); status != http.StatusNotFound {
		t.Fatalf("GET after DELETE: %d, want 404", status)
	}
	// A later message creates it anew.
	c2 := mqttClient(t, h, "mq-del-2", nil)
	publish(t, c2, "devices/mq-del/telemetry", 1, `{"hum":40}`)
	if status := deviceStatus(t, h, "mq-del"); status != http.StatusOK {
		t.Fatalf("GET after a new message: %d, want 200", status)
	}
}

func TestDeleteDeviceNeedsAdminToken(t *testing.T) {
	h := startHub(t, securedConfig(t))
	d := dialDeviceWith(t, h, "pump-7", "", bearer(pumpTok))
	d.send(t, `{"type":"telemetry","values":{"temp":21.5}}`)
	if m := d.next(t); m["type"] != "ack" {
		t.Fatalf("reading: %v", m)
	}
	for _, c := range []struct {
		token  string
		status int
		says   string
	}{
		{"", http.StatusUnauthorized, "admin token is required"},
		{opsTok, http.StatusForbidden, "this endpoint needs the admin token, not a watcher token"},
		{pumpTok, http.StatusUnauthorized, "admin token is required"},
	} {
		if status, body := call(t, h, "DELETE", "/v1/devices/pump-7", c.token, ""); status != c.status || !strings.Contains(string(body), c.says) {
			t.Fatalf("DELETE with token %q: %d %s, want %d saying %q", c.token, status, body, c.status, c.says)
		}
	}
	if status, body := call(t, h, "DELETE", "/v1/devices/pump-7", adminTok, ""); status != http.StatusNoContent {
		t.Fatalf("DELETE with the admin token: %d %s", status, body)
	}
}

// The device list pages through real storage and live presence.
func TestDevicesPaged(t *testing.T) {
	h := startHub(t, testConfig(t))
	c := mqttClient(t, h, "pager", nil)
	for _, id := range []string{"p-3", "p-1", "q-1", "p-2", "p-10"} {
		publish(t, c, "devices/"+id+"/telemetry", 1, `{"temp":1}`)
	}
	var page []struct {
		ID     string `json:"id"`
		Online bool   `json:"online"`
	}
	resp, err := http.Get("http://" + h.HTTPAddr() + "/v1/devices?prefix=p-&limit=3")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %v", resp.StatusCode, err)
	}
	if len(page) != 3 || page[0].ID != "p-1" || page[1].ID != "p-10" || page[2].ID != "p-2" || !page[0].Online {
		t.Fatalf("first page %+v", page)
	}
	if link := resp.Header.Get("Link"); link != `</v1/devices?after=p-2&limit=3&prefix=p->; rel="next"` {
		t.Fatalf("Link %q", link)
	}
	if status := getJSON(t, h, "/v1/devices?prefix=p-&after=p-2", &page); status != http.StatusOK || len(page) != 1 || page[0].ID != "p-3" {
		t.Fatalf("second page: %d %+v", status, page)
	}
}
