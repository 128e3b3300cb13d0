package hub

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// command is the command object of the REST API.
type command struct {
	ID      string         `json:"id"`
	Device  string         `json:"device"`
	Name    string         `json:"name"`
	Params  map[string]any `json:"params"`
	State   string         `json:"state"`
	Status  string         `json:"status"`
	Result  map[string]any `json:"result"`
	Message string         `json:"message"`
	Expires string         `json:"expires"`
}

// doJSON sends a request with an optional JSON body and decodes the answer
// into v; it returns the status.
func doJSON(t *testing.T, h *Hub, method, path, body string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+h.HTTPAddr()+path, bytes.NewBufferString(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil && len(b) > 0 {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

func createCommand(t *testing.T, h *Hub, device, body string) command {
	t.Helper()
	var c command
	if st := doJSON(t, h, http.MethodPost, "/v1/devices/"+device+"/commands", body, &c); st != http.StatusCreated {
		t.Fatalf("create command: status %d", st)
	}
	return c
}

func commandState(t *testing.T, h *Hub, id string) command {
	t.Helper()
	var c command
	if st := getJSON(t, h, "/v1/commands/"+id, &c); st != http.StatusOK {
		t.Fatalf("GET command %s: %d", id, st)
	}
	return c
}

func waitCommand(t *testing.T, h *Hub, id, state string) command {
	t.Helper()
	var c command
	waitFor(t, "command "+id+" "+state, func() bool { c = commandState(t, h, id); return c.State == state })
	return c
}

// nextOfType returns the next frame of type typ, skipping acks.
func (d *wsDevice) nextOfType(t *testing.T, typ string) map[string]any {
	t.Helper()
	for {
		m := d.next(t)
		if m["type"] == typ {
			return m
		}
	}
}

// commandStates reads the states of command id from the watcher until
// the final one.
func commandStates(t *testing.T, w *sseReader, id, final string) []string {
	t.Helper()
	var states []string
	for {
		e := w.next(t)
		if e.Event != "command" || e.Data["id"] != id {
			continue
		}
		if e.Data["topic"] != "commands/"+fmt.Sprint(e.Data["device"]) {
			t.Fatalf("command event on topic %v", e.Data["topic"])
		}
		states = append(states, e.Data["state"].(string))
		if states[len(states)-1] == final {
			return states
		}
	}
}

func TestWebSocketCommandSucceedsAndFails(t *testing.T) {
	h := startHub(t, testConfig(t))
	watch := openSSE(t, h, url.Values{"topic": {"commands/#"}}, "")
	d := dialDevice(t, h, "pump-1")
	ok := createCommand(t, h, "pump-1", `{"name":"set_interval","params":{"seconds":5},"ttl":"5m"}`)
	bad := createCommand(t, h, "pump-1", `{"name":"reboot"}`)
	if ok.State != "queued" || ok.Device != "pump-1" || ok.Params["seconds"] != float64(5) {
		t.Fatalf("created %+v", ok)
	}
	for _, c := range []command{ok, bad} {
		f := d.nextOfType(t, "command")
		if f["id"] != c.ID || f["name"] != c.Name || f["expires"] != c.Expires {
			t.Fatalf("frame %v, want command %s (creation order)", f, c.ID)
		}
	}
	d.send(t, fmt.Sprintf(`{"type":"command_ack","id":%q}`, ok.ID))
	d.send(t, fmt.Sprintf(`{"type":"command_result","id":%q,"status":"ok","result":{"interval":5}}`, ok.ID))
	d.send(t, fmt.Sprintf(`{"type":"command_ack","id":%q}`, bad.ID))
	d.send(t, fmt.Sprintf(`{"type":"command_result","id":%q,"status":"error","message":"busy"}`, bad.ID))
	got := waitCommand(t, h, ok.ID, "succeeded")
	if got.Result["interval"] != float64(5) || got.Status != "ok" {
		t.Fatalf("succeeded command %+v", got)
	}
	if got := waitCommand(t, h, bad.ID, "failed"); got.Message != "busy" {
		t.Fatalf("failed command %+v", got)
	}
	want := "[queued sent delivered succeeded]"
	if s := fmt.Sprint(commandStates(t, watch, ok.ID, "succeeded")); s != want {
		t.Fatalf("watcher saw %s, want %s", s, want)
	}
}

func TestWebSocketInvalidCommandAnswers(t *testing.T) {
	h := startHub(t, testConfig(t))
	other := createCommand(t, h, "other", `{"name":"ping"}`)
	d := dialDevice(t, h, "pump-2")
	for _, frame := range []string{
		`{"type":"command_ack","id":"00000000000000ff"}`,
		fmt.Sprintf(`{"type":"command_ack","id":%q}`, other.ID),
		`{"type":"command_result","id":"x","status":"maybe"}`,
		`{"type":"command_ack"}`,
	} {
		d.send(t, frame)
		if m := d.nextOfType(t, "error"); m["code"] != "bad_request" {
			t.Fatalf("answer to %s: %v", frame, m)
		}
	}
	waitFor(t, "error events", func() bool { return len(events(t, h, "errors/pump-2")) == 4 })
	if c := commandState(t, h, other.ID); c.State != "queued" {
		t.Fatalf("another device's ack moved the command to %s", c.State)
	}
}

func TestWebSocketDeliveredThenResultAfterReconnect(t *testing.T) {
	h := startHub(t, testConfig(t))
	d := dialDevice(t, h, "pump-3")
	c := createCommand(t, h, "pump-3", `{"name":"calibrate"}`)
	d.nextOfType(t, "command")
	d.send(t, fmt.Sprintf(`{"type":"command_ack","id":%q}`, c.ID))
	waitCommand(t, h, c.ID, "delivered")
	_ = d.conn.WriteClose(1000, nil)
	<-d.done

	d2 := dialDevice(t, h, "pump-3")
	later := createCommand(t, h, "pump-3", `{"name":"ping"}`)
	if f := d2.nextOfType(t, "command"); f["id"] != later.ID {
		t.Fatalf("after reconnect got %v: a delivered command is not sent again", f)
	}
	d2.send(t, fmt.Sprintf(`{"type":"command_result","id":%q,"status":"ok"}`, c.ID))
	waitCommand(t, h, c.ID, "succeeded")
}

func TestCommandWaitReturnsTheResult(t *testing.T) {
	h := startHub(t, testConfig(t))
	d := dialDevice(t, h, "pump-4")
	go func() {
		for m := range d.in {
			if m["type"] == "command" {
				_ = d.conn.WriteString(fmt.Sprintf(`{"type":"command_result","id":%q,"status":"ok","result":{"pong":true}}`, m["id"]))
				return
			}
		}
	}()
	var c command
	st := doJSON(t, h, http.MethodPost, "/v1/devices/pump-4/commands?wait=30s", `{"name":"ping"}`, &c)
	if st != http.StatusCreated || c.State != "succeeded" || c.Result["pong"] != true {
		t.Fatalf("?wait=: %d %+v, want 201 succeeded with the result", st, c)
	}
	st = doJSON(t, h, http.MethodPost, "/v1/devices/offline-1/commands?wait=10ms", `{"name":"ping"}`, &c)
	if st != http.StatusAccepted || c.State != "queued" {
		t.Fatalf("?wait= on an offline device: %d %+v, want 202 queued", st, c)
	}
}

func TestCommandREST(t *testing.T) {
	cfg := testConfig(t)
	h := startHub(t, cfg)
	for _, body := range []string{`{"name":"a/b"}`, `{"name":"x","params":[1]}`, `{"name":"x","ttl":"8d"}`,
		`{"name":"x","ttl":"200h"}`, `{"name":"x","ttl":"0s"}`, `{"name":"x","ttl":"-5m"}`, `{"name":"x","bogus":1}`, `not json`} {
		if st := doJSON(t, h, http.MethodPost, "/v1/devices/d1/commands", body, nil); st != http.StatusBadRequest {
			t.Errorf("create %s: %d, want 400", body, st)
		}
	}
	if st := doJSON(t, h, http.MethodPost, "/v1/devices/d1/commands?wait=2m", `{"name":"x"}`, nil); st != http.StatusBadRequest {
		t.Errorf("wait over a minute: %d, want 400", st)
	}
	var now command
	if st := doJSON(t, h, http.MethodPost, "/v1/devices/d2/commands?wait=0s", `{"name":"x"}`, &now); st != http.StatusCreated || now.State != "queued" {
		t.Errorf("wait=0s: %d %+v, want 201 at once with the queued command", st, now)
	}
	var ids []string
	for i := range 100 {
		ids = append(ids, createCommand(t, h, "d1", fmt.Sprintf(`{"name":"n%d"}`, i)).ID)
	}
	if st := doJSON(t, h, http.MethodPost, "/v1/devices/d1/commands", `{"name":"x"}`, nil); st != http.StatusTooManyRequests {
		t.Fatalf("101st pending command: %d, want 429", st)
	}
	var canceled command
	if st := doJSON(t, h, http.MethodDelete, "/v1/commands/"+ids[0], "", &canceled); st != http.StatusOK || canceled.State != "canceled" {
		t.Fatalf("cancel: %d %+v", st, canceled)
	}
	if st := doJSON(t, h, http.MethodDelete, "/v1/commands/"+ids[0], "", nil); st != http.StatusConflict {
		t.Fatalf("cancel twice: %d, want 409", st)
	}
	if st := doJSON(t, h, http.MethodDelete, "/v1/commands/00000000000fffff", "", nil); st != http.StatusNotFound {
		t.Fatalf("cancel unknown: %d, want 404", st)
	}
	createCommand(t, h, "d1", `{"name":"after_cancel"}`)
	var list struct{ Commands []command }
	if st := getJSON(t, h, "/v1/devices/d1/commands?limit=3", &list); st != http.StatusOK || len(list.Commands) != 3 ||
		list.Commands[0].Name != "after_cancel" || list.Commands[1].Name != "n99" {
		t.Fatalf("list: %d %+v, want newest first", st, list.Commands)
	}
	if getJSON(t, h, "/v1/devices/d1/commands?state=canceled", &list); len(list.Commands) != 1 || list.Commands[0].ID != ids[0] {
		t.Fatalf("list canceled: %+v", list.Commands)
	}
	for _, q := range []string{"state=done", "limit=0", "limit=x"} {
		if st := getJSON(t, h, "/v1/devices/d1/commands?"+q, nil); st != http.StatusBadRequest {
			t.Errorf("list ?%s: %d, want 400", q, st)
		}
	}
	if st := getJSON(t, h, "/v1/commands/nope", nil); st != http.StatusNotFound {
		t.Errorf("GET unknown: %d, want 404", st)
	}
}

func TestMQTTCommandSucceedsAndFails(t *testing.T) {
	h := startHub(t, testConfig(t))
	watch := openSSE(t, h, url.Values{"topic": {"commands/valve-1"}}, "")
	ok := createCommand(t, h, "valve-1", `{"name":"open","params":{"pct":40}}`)
	bad := createCommand(t, h, "valve-1", `{"name":"close"}`)
	cl := mqttClient(t, h, "valve-1", func(o *mqtt.ClientOptions) {
		o.SetDefaultPublishHandler(func(mqtt.Client, mqtt.Message) {})
	})
	got := subscribe(t, cl, "devices/valve-1/commands")
	for _, c := range []command{ok, bad} {
		select {
		case m := <-got:
			var p map[string]any
			if err := json.Unmarshal(m.Payload(), &p); err != nil || p["id"] != c.ID || p["name"] != c.Name || m.Qos() != 1 {
				t.Fatalf("publish %s (qos %d), want command %s in creation order", m.Payload(), m.Qos(), c.ID)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no command published")
		}
	}
	waitCommand(t, h, ok.ID, "delivered") // the PUBACK
	waitCommand(t, h, bad.ID, "delivered")
	publish(t, cl, "devices/valve-1/commands/"+ok.ID+"/result", 1, `{"status":"ok","result":{"pct":40}}`)
	publish(t, cl, "devices/valve-1/commands/"+bad.ID+"/result", 1, `{"status":"error","message":"stuck"}`)
	if c := waitCommand(t, h, ok.ID, "succeeded"); c.Result["pct"] != float64(40) {
		t.Fatalf("succeeded %+v", c)
	}
	if c := waitCommand(t, h, bad.ID, "failed"); c.Message != "stuck" {
		t.Fatalf("failed %+v", c)
	}
	if s := fmt.Sprint(commandStates(t, watch, bad.ID, "failed")); s != "[queued sent delivered failed]" {
		t.Fatalf("watcher saw %s", s)
	}
	if n := len(events(t, h, "telemetry/valve-1/#")); n != 0 {
		t.Fatalf("%d telemetry events from results, want none", n)
	}
}

func TestMQTTInvalidCommandResults(t *testing.T) {
	h := startHub(t, testConfig(t))
	other := createCommand(t, h, "other", `{"name":"ping"}`)
	cl := mqttClient(t, h, "valve-2", func(o *mqtt.ClientOptions) {
		o.SetDefaultPublishHandler(func(mqtt.Client, mqtt.Message) {})
	})
	answers := subscribe(t, cl, "devices/valve-2/errors")
	for _, p := range []struct{ topic, payload string }{
		{"devices/valve-2/commands/00000000000000ff/result", `{"status":"ok"}`},
		{"devices/valve-2/commands/" + other.ID + "/result", `{"status":"ok"}`},
		{"devices/valve-2/commands/" + other.ID + "/result", `{"status":`},
	} {
		publish(t, cl, p.topic, 1, p.payload)
		select {
		case <-answers:
		case <-time.After(10 * time.Second):
			t.Fatalf("no error answer to %s %s", p.topic, p.payload)
		}
	}
	waitFor(t, "error events", func() bool { return len(events(t, h, "errors/valve-2")) == 3 })
	if c := commandState(t, h, other.ID); c.State != "queued" {
		t.Fatalf("another device's result moved the command to %s", c.State)
	}
}

func TestRestartKeepsCommandsAndResendsUnconfirmed(t *testing.T) {
	cfg := testConfig(t)
	h, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	d := dialDevice(t, h, "pump-9")
	confirmed := createCommand(t, h, "pump-9", `{"name":"one"}`)
	unconfirmed := createCommand(t, h, "pump-9", `{"name":"two"}`)
	d.nextOfType(t, "command")
	d.nextOfType(t, "command")
	d.send(t, fmt.Sprintf(`{"type":"command_ack","id":%q}`, confirmed.ID))
	waitCommand(t, h, confirmed.ID, "delivered")
	waitCommand(t, h, unconfirmed.ID, "sent")
	stopHub(t, h)

	h2 := startHub(t, cfg)
	if c := commandState(t, h2, confirmed.ID); c.State != "delivered" {
		t.Fatalf("after restart %s is %s", confirmed.ID, c.State)
	}
	d2 := dialDevice(t, h2, "pump-9")
	if f := d2.nextOfType(t, "command"); f["id"] != unconfirmed.ID {
		t.Fatalf("after restart got %v, want the unconfirmed %s again", f, unconfirmed.ID)
	}
	d2.send(t, fmt.Sprintf(`{"type":"command_result","id":%q,"status":"ok"}`, unconfirmed.ID))
	waitCommand(t, h2, unconfirmed.ID, "succeeded")
}

func TestCommandMetrics(t *testing.T) {
	h := startHub(t, testConfig(t))
	d := dialDevice(t, h, "pump-5")
	c := createCommand(t, h, "pump-5", `{"name":"ping"}`)
	d.nextOfType(t, "command")
	d.send(t, fmt.Sprintf(`{"type":"command_ack","id":%q}`, c.ID))
	d.send(t, fmt.Sprintf(`{"type":"command_result","id":%q,"status":"ok"}`, c.ID))
	waitCommand(t, h, c.ID, "succeeded")
	waitFor(t, "metrics", func() bool {
		resp, err := http.Get("http://" + h.HTTPAddr() + "/metrics")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return bytes.Contains(b, []byte("telehub_commands_created_total 1")) &&
			bytes.Contains(b, []byte(`telehub_commands_finished_total{state="succeeded"} 1`)) &&
			bytes.Contains(b, []byte("telehub_command_delivery_seconds_count 1"))
	})
}

func TestCommandsNeedATokenThatMayCommand(t *testing.T) {
	h := startHub(t, securedConfig(t))
	// pumps watches telemetry and presence of pump-7 only: no command events.
	pumps, st := openSSEWith(t, h, url.Values{"topic": {"telemetry/pump-7/#", "presence/pump-7"}}, pumpsTok)
	if st != http.StatusOK {
		t.Fatalf("pumps watcher: %d", st)
	}
	ops, _ := openSSEWith(t, h, url.Values{"topic": {"commands/#"}}, opsTok)
	for _, c := range []struct {
		token string
		want  int
	}{{"", http.StatusUnauthorized}, {"wrong", http.StatusUnauthorized}, {opsTok, http.StatusForbidden}, {pumpTok, http.StatusUnauthorized}} {
		if st, body := call(t, h, http.MethodPost, "/v1/devices/pump-7/commands", c.token, `{"name":"ping"}`); st != c.want {
			t.Errorf("token %q: %d %s, want %d", c.token, st, body, c.want)
		}
		if st, _ := call(t, h, http.MethodGet, "/v1/devices/pump-7/commands", c.token, ""); st != c.want {
			t.Errorf("list with token %q: %d, want %d", c.token, st, c.want)
		}
	}
	st, body := call(t, h, http.MethodPost, "/v1/devices/pump-7/commands", adminTok, `{"name":"ping"}`)
	if st != http.StatusCreated {
		t.Fatalf("admin: %d %s", st, body)
	}
	var c command
	_ = json.Unmarshal(body, &c)
	if s := fmt.Sprint(commandStates(t, ops, c.ID, "queued")); s != "[queued]" {
		t.Fatalf("ops watcher saw %s", s)
	}
	// A reading after the command: the pumps watcher sees it and nothing before it.
	d := dialDeviceWith(t, h, "pump-7", "", http.Header{"Authorization": {"Bearer " + pumpTok}})
	d.nextOfType(t, "command")
	d.send(t, `{"type":"telemetry","seq":1,"values":{"temp":1}}`)
	for {
		e := pumps.next(t)
		if e.Event == "command" {
			t.Fatalf("a watcher outside commands/# got %v", e)
		}
		if e.Event == "telemetry" {
			break
		}
	}
}

// A shutdown ends a create that waits for its command: the client gets 202
// with the command as it stands, and the hub stops without waiting for the
// rest of the wait.
func TestShutdownEndsACommandWait(t *testing.T) {
	h := startHub(t, testConfig(t))
	type answer struct {
		status int
		cmd    command
	}
	answered := make(chan answer, 1)
	go func() {
		var a answer
		req, _ := http.NewRequest(http.MethodPost, "http://"+h.HTTPAddr()+"/v1/devices/away-1/commands?wait=60s",
			bytes.NewBufferString(`{"name":"x"}`))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			a.status = resp.StatusCode
			_ = json.NewDecoder(resp.Body).Decode(&a.cmd)
			resp.Body.Close()
		}
		answered <- a
	}()
	var list struct{ Commands []command }
	waitFor(t, "the command stored", func() bool {
		getJSON(t, h, "/v1/devices/away-1/commands", &list)
		return len(list.Commands) == 1
	})
	stopHub(t, h)
	if a := <-answered; a.status != http.StatusAccepted || a.cmd.State != "queued" || a.cmd.ID != list.Commands[0].ID {
		t.Fatalf("answer %d %+v, want 202 with the queued command", a.status, a.cmd)
	}
}
