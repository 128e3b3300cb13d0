package hub

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/lxzan/gws"
)

// byTopic indexes events by topic; the test readings use one value per
// topic.
func byTopic(evs []apiEvent) map[string]apiEvent {
	m := make(map[string]apiEvent, len(evs))
	for _, e := range evs {
		m[e.Data["topic"].(string)] = e
	}
	return m
}

func TestWebSocketTelemetryIsAckedAfterStorage(t *testing.T) {
	h := startHub(t, testConfig(t))
	d := dialDevice(t, h, "pump-7")

	d.send(t, `{"type":"telemetry","seq":42,"ts":1764064800123,"values":{"temp":21.5,"door":"open","alarm":false}}`)
	if m := d.next(t); m["type"] != "ack" || m["seq"] != 42.0 {
		t.Fatalf("want ack of seq 42, got %v", m)
	}
	// The ack means stored: the events are readable right away.
	evs := byTopic(events(t, h, "telemetry/pump-7/#"))
	if len(evs) != 3 {
		t.Fatalf("want 3 events after the ack, got %d: %v", len(evs), evs)
	}
	temp := evs["telemetry/pump-7/temp"]
	want := map[string]any{"topic": "telemetry/pump-7/temp", "device": "pump-7", "metric": "temp", "value": 21.5,
		"ts": "2025-11-25T10:00:00.123Z", "device_seq": 42.0}
	for k, v := range want {
		if temp.Data[k] != v {
			t.Errorf("temp event %s = %v, want %v", k, temp.Data[k], v)
		}
	}
	if temp.Event != "telemetry" || temp.ID == "" {
		t.Errorf("temp event header: %+v", temp)
	}
	if evs["telemetry/pump-7/door"].Data["value"] != "open" || evs["telemetry/pump-7/alarm"].Data["value"] != false {
		t.Errorf("string/bool values wrong: %v", evs)
	}

	// A resend of seq 42 is acked again and not stored twice; a frame
	// without seq is acked without one.
	d.send(t, `{"type":"telemetry","seq":42,"values":{"temp":99}}`)
	if m := d.next(t); m["type"] != "ack" || m["seq"] != 42.0 {
		t.Fatalf("want duplicate acked, got %v", m)
	}
	d.send(t, `{"type":"telemetry","senml":[{"bn":"sensor.","n":"rpm","v":1200,"u":"1/min"}]}`)
	if m := d.next(t); m["type"] != "ack" || m["seq"] != nil {
		t.Fatalf("want ack without seq, got %v", m)
	}
	d.send(t, `{"type":"heartbeat"}`)

	all := events(t, h, "telemetry/pump-7/#")
	if len(all) != 4 {
		t.Fatalf("want 4 events (3 + senml, duplicate not stored), got %d", len(all))
	}
	rpm := all[3]
	if rpm.Data["topic"] != "telemetry/pump-7/sensor.rpm" || rpm.Data["unit"] != "1/min" || rpm.Data["device_seq"] != nil {
		t.Errorf("senml event: %v", rpm.Data)
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID <= all[i-1].ID {
			t.Errorf("ids not increasing: %s after %s", all[i].ID, all[i-1].ID)
		}
	}
}

func TestMQTTPayloadFormsAreNormalized(t *testing.T) {
	h := startHub(t, testConfig(t))
	c := mqttClient(t, h, "dev-client", nil)

	for _, qos := range []byte{0, 1} {
		publish(t, c, "devices/m1/telemetry", qos, `{"temp":20.5,"hum":40,"door":"open","alarm":false,"seq":1,"ts":"2026-11-25T10:00:00Z"}`)
	}
	publish(t, c, "devices/m2/telemetry", 1, `{"ts":1764064800000,"seq":7,"values":{"temp":19}}`)
	publish(t, c, "devices/m3/telemetry", 1, `[{"bn":"room.","bt":1764064800,"bu":"Cel","n":"temp","v":22.5},{"n":"hum","u":"%RH","v":41,"t":1},{"n":"state","vs":"ok"},{"n":"on","vb":true}]`)
	publish(t, c, "devices/m4/telemetry/temp", 1, "18.25")
	publish(t, c, "devices/m4/telemetry/mode", 1, "eco")
	publish(t, c, "devices/m4/telemetry/armed", 1, "true")
	publish(t, c, "devices/m4/heartbeat", 1, "x")

	evs := byTopic(events(t, h, "telemetry/#"))
	want := map[string]any{
		"telemetry/m1/temp":       20.5,
		"telemetry/m1/hum":        40.0,
		"telemetry/m1/door":       "open",
		"telemetry/m1/alarm":      false,
		"telemetry/m2/temp":       19.0,
		"telemetry/m3/room.temp":  22.5,
		"telemetry/m3/room.hum":   41.0,
		"telemetry/m3/room.state": "ok",
		"telemetry/m3/room.on":    true,
		"telemetry/m4/temp":       18.25,
		"telemetry/m4/mode":       "eco",
		"telemetry/m4/armed":      true,
	}
	if len(evs) != len(want) {
		t.Errorf("got %d distinct topics, want %d: %v", len(evs), len(want), evs)
	}
	for topic, v := range want {
		if got := evs[topic].Data["value"]; got != v {
			t.Errorf("%s: value %v, want %v", topic, got, v)
		}
	}
	// QoS 0 and QoS 1 of the same seq: stored once.
	if n := len(events(t, h, "telemetry/m1/temp")); n != 1 {
		t.Errorf("m1 seq 1 stored %d times, want once", n)
	}
	checks := []struct {
		topic, key string
		want       any
	}{
		{"telemetry/m1/temp", "ts", "2026-11-25T10:00:00.000Z"},
		{"telemetry/m2/temp", "device_seq", 7.0},
		{"telemetry/m3/room.temp", "unit", "Cel"},
		{"telemetry/m3/room.hum", "unit", "%RH"},
		{"telemetry/m3/room.hum", "ts", "2025-11-25T10:00:01.000Z"},
	}
	for _, c := range checks {
		if got := evs[c.topic].Data[c.key]; got != c.want {
			t.Errorf("%s %s = %v, want %v", c.topic, c.key, got, c.want)
		}
	}
	var dev struct {
		ID    string                    `json:"id"`
		State map[string]map[string]any `json:"state"`
	}
	if code := getJSON(t, h, "/v1/devices/m4", &dev); code != http.StatusOK {
		t.Fatalf("GET /v1/devices/m4: %d", code)
	}
	if dev.State["temp"]["value"] != 18.25 || dev.State["mode"]["value"] != "eco" {
		t.Errorf("m4 state: %v", dev.State)
	}
}

func TestMQTTRejectionsAreAnsweredAndRecorded(t *testing.T) {
	h := startHub(t, testConfig(t))
	c := mqttClient(t, h, "bad-client", nil)
	answers := subscribe(t, c, "devices/bad/errors")

	publish(t, c, "devices/bad/telemetry", 1, `{"temp":21,"seq":1}`)
	cases := []struct {
		name, topic, payload, mention string
	}{
		{"invalid json", "devices/bad/telemetry", `{"temp":`, "JSON"},
		{"nested value", "devices/bad/telemetry", `{"temp":{"c":1}}`, "temp"},
		{"bad metric name", "devices/bad/telemetry", `{"a b":1}`, "a b"},
		{"wrong seq type", "devices/bad/telemetry", `{"temp":1,"seq":"7"}`, "seq"},
		{"wrong ts type", "devices/bad/telemetry", `{"temp":1,"ts":true}`, "ts"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			publish(t, c, tc.topic, 1, tc.payload)
			select {
			case m := <-answers:
				var ans struct{ Code, Message, Topic string }
				if err := json.Unmarshal(m.Payload(), &ans); err != nil {
					t.Fatalf("answer %s: %v", m.Payload(), err)
				}
				if ans.Code == "" || ans.Topic != tc.topic || !strings.Contains(ans.Message, tc.mention) {
					t.Errorf("answer %+v should name %q and topic %s", ans, tc.mention, tc.topic)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no error answer")
			}
		})
	}
	if !c.IsConnected() {
		t.Fatal("the device was disconnected for bad payloads")
	}
	// Answers go out at once; the error events follow through storage.
	var errs []apiEvent
	waitFor(t, "the error events", func() bool {
		errs = events(t, h, "errors/bad")
		return len(errs) >= len(cases)
	})
	if len(errs) != len(cases) {
		t.Errorf("want %d errors/bad events, got %d", len(cases), len(errs))
	}
	for _, e := range errs {
		if e.Event != "error" || e.Data["source_topic"] != "devices/bad/telemetry" || e.Data["code"] == "" {
			t.Errorf("error event: %+v", e)
		}
	}
	// The acknowledged reading is still there, alone.
	if tel := events(t, h, "telemetry/bad/#"); len(tel) != 1 || tel[0].Data["value"] != 21.0 {
		t.Errorf("acked reading lost or bad payloads stored: %v", tel)
	}
}

func TestMQTTBadDeviceIDIsNeverATopic(t *testing.T) {
	h := startHub(t, testConfig(t))
	c := mqttClient(t, h, "weird", nil)
	publish(t, c, "devices/bad id/telemetry", 1, `{"temp":1}`)
	publish(t, c, "devices/"+strings.Repeat("x", 65)+"/telemetry", 1, `{"temp":1}`)
	publish(t, c, "devices/ok/telemetry", 1, `{"temp":1}`)
	all := events(t, h, "#")
	for _, e := range all {
		if d := e.Data["device"]; d != "ok" {
			t.Errorf("event for an invalid device id: %+v", e)
		}
	}
}

func TestWebSocketRejections(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxPayload = 1024
	h := startHub(t, cfg)
	d := dialDevice(t, h, "ws-bad")
	d.send(t, `{"type":"telemetry","seq":1,"values":{"temp":1}}`)
	if m := d.next(t); m["type"] != "ack" {
		t.Fatalf("want ack, got %v", m)
	}
	bad := []struct{ name, frame, mention string }{
		{"invalid json", `{"type":`, "JSON"},
		{"unknown type", `{"type":"reboot","seq":2}`, "reboot"},
		{"nested value", `{"type":"telemetry","seq":3,"values":{"temp":[1]}}`, "temp"},
		{"bad metric", `{"type":"telemetry","seq":4,"values":{"te/mp":1}}`, "te/mp"},
		{"wrong seq type", `{"type":"telemetry","seq":-5,"values":{"temp":1}}`, "seq"},
		{"wrong ts type", `{"type":"telemetry","seq":6,"ts":{},"values":{"temp":1}}`, "ts"},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			d.send(t, b.frame)
			m := d.next(t)
			if m["type"] != "error" || m["code"] != "bad_request" || !strings.Contains(m["message"].(string), b.mention) {
				t.Fatalf("want error frame naming %q, got %v", b.mention, m)
			}
		})
	}
	// Still usable.
	d.send(t, `{"type":"telemetry","seq":7,"values":{"temp":2}}`)
	if m := d.next(t); m["type"] != "ack" || m["seq"] != 7.0 {
		t.Fatalf("connection not usable after errors: %v", m)
	}
	if n := len(events(t, h, "telemetry/ws-bad/#")); n != 2 {
		t.Errorf("want the 2 acked readings stored, got %d", n)
	}
}

func TestWebSocketProtocolLimits(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxPayload = 1024
	h := startHub(t, cfg)

	t.Run("oversized frame closes 1009", func(t *testing.T) {
		d := dialDevice(t, h, "big")
		d.send(t, `{"type":"telemetry","values":{"s":"`+strings.Repeat("x", 2000)+`"}}`)
		expectClose(t, d, 1009)
	})
	t.Run("invalid utf-8 closes 1007", func(t *testing.T) {
		d := dialDevice(t, h, "utf")
		if err := d.conn.WriteMessage(gws.OpcodeText, []byte("{\"type\":\"heartbeat\",\"x\":\"\xff\xfe\"}")); err != nil {
			t.Fatal(err)
		}
		expectClose(t, d, 1007)
	})
	t.Run("bad device id is 400 before upgrade", func(t *testing.T) {
		for _, id := range []string{"a%20b", "a+b", "%23", strings.Repeat("x", 65), "-lead"} {
			resp, err := http.Get("http://" + h.HTTPAddr() + "/v1/devices/" + id + "/ws")
			if err != nil {
				t.Fatal(err)
			}
			var body struct {
				Error struct{ Code, Message string }
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || body.Error.Code == "" {
				t.Errorf("id %q: status %d body %+v, want 400 with a JSON error", id, resp.StatusCode, body)
			}
		}
	})
}

func expectClose(t *testing.T, d *wsDevice, code uint16) {
	t.Helper()
	for {
		select {
		case m := <-d.in:
			t.Logf("message before close: %v", m)
		case err := <-d.closed:
			var ce *gws.CloseError
			if !errors.As(err, &ce) || ce.Code != code {
				t.Fatalf("closed with %v, want close code %d", err, code)
			}
			return
		case <-time.After(10 * time.Second):
			t.Fatalf("not closed with %d", code)
		}
	}
}

func TestMQTTOversizedPayloadIsNotStored(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxPayload = 1024
	h := startHub(t, cfg)
	c := mqttClient(t, h, "big-mqtt", func(o *mqtt.ClientOptions) { o.SetAutoReconnect(false) })
	tok := c.Publish("devices/bigm/telemetry", 1, false, `{"s":"`+strings.Repeat("x", 4000)+`"}`)
	tok.WaitTimeout(5 * time.Second)
	c2 := mqttClient(t, h, "small-mqtt", nil)
	publish(t, c2, "devices/bigm/telemetry", 1, `{"ok":1}`)
	tel := events(t, h, "telemetry/bigm/#")
	if len(tel) != 1 || tel[0].Data["metric"] != "ok" {
		t.Fatalf("oversized payload stored or later one lost: %v", tel)
	}
}
