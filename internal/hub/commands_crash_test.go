package hub

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// stateRank orders command states: a state never goes back to a lower
// rank, and the final states share the highest.
var stateRank = map[string]int{"queued": 0, "sent": 1, "delivered": 2,
	"succeeded": 3, "failed": 3, "expired": 3, "canceled": 3}

// callAt sends a request with an optional JSON body to the hub at
// hostPort and decodes the answer into v; it returns the status.
func callAt(t *testing.T, hostPort, method, path, body string, v any) int {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+hostPort+path, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
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

func createCommandAt(t *testing.T, hostPort, device, body string) command {
	t.Helper()
	var c command
	if st := callAt(t, hostPort, http.MethodPost, "/v1/devices/"+device+"/commands", body, &c); st != http.StatusCreated {
		t.Fatalf("create command for %s: status %d", device, st)
	}
	return c
}

func commandAt(t *testing.T, hostPort, id string) command {
	t.Helper()
	var c command
	if st := callAt(t, hostPort, http.MethodGet, "/v1/commands/"+id, "", &c); st != http.StatusOK {
		t.Fatalf("GET command %s: status %d", id, st)
	}
	return c
}

// waitCommandAt waits until the hub at hostPort has stored command id in
// state.
func waitCommandAt(t *testing.T, hostPort, id, state string) {
	t.Helper()
	waitFor(t, "command "+id+" "+state, func() bool { return commandAt(t, hostPort, id).State == state })
}

// commandFrame waits for the next command frame of d and returns its id.
func commandFrame(t *testing.T, d *wsDevice) string {
	t.Helper()
	id, _ := d.nextOfType(t, "command")["id"].(string)
	return id
}

// mqttCommands collects the command publishes an MQTT device receives;
// it acknowledges none by itself.
type mqttCommands chan mqtt.Message

// next returns the next command publish and its command id.
func (c mqttCommands) next(t *testing.T) (mqtt.Message, string) {
	t.Helper()
	select {
	case m := <-c:
		var p struct{ ID string }
		if err := json.Unmarshal(m.Payload(), &p); err != nil {
			t.Fatalf("command publish %s: %v", m.Payload(), err)
		}
		return m, p.ID
	case <-time.After(10 * time.Second):
		t.Fatal("no command published within 10s")
	}
	return nil, ""
}

// mqttDevice connects an MQTT device to the broker at hostPort that
// confirms a command only when the test acks its publish.
func mqttDevice(t *testing.T, hostPort, id string) (mqtt.Client, mqttCommands) {
	t.Helper()
	cl := mqttClientAt(t, hostPort, id, func(o *mqtt.ClientOptions) {
		o.SetAutoAckDisabled(true)
		o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { m.Ack() })
	})
	got := make(mqttCommands, 64)
	tok := cl.Subscribe("devices/"+id+"/commands", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m })
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", id, tok.Error())
	}
	return cl, got
}

// wsRepeats reads d's command frames up to marker, a command created
// after the first of them arrived: the hub queues the commands it sends
// on a connection before any created later. It returns the ids before
// the marker.
func wsRepeats(t *testing.T, hostPort string, d *wsDevice, device string) []string {
	t.Helper()
	first := commandFrame(t, d)
	marker := createCommandAt(t, hostPort, device, `{"name":"marker"}`)
	seen := []string{first}
	if first == marker.ID {
		return nil
	}
	for id := commandFrame(t, d); id != marker.ID; id = commandFrame(t, d) {
		seen = append(seen, id)
	}
	return seen
}

// TestCrashKeepsCommandsAndResendsUnconfirmed kills a hub with SIGKILL
// while it holds commands in every state, over WebSocket and MQTT, and
// restarts it on the same data: no command is lost or goes back, the
// stored history of each command only moves forward, and each device is
// sent again exactly the commands it had not confirmed.
func TestCrashKeepsCommandsAndResendsUnconfirmed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hubs as child processes")
	}
	dataDir := t.TempDir()
	child := startChild(t, dataDir)
	at := child.http

	// Offline device off-1: one queued, one expired (by the hub's own
	// clock: a ttl of one second), one canceled.
	expired := createCommandAt(t, at, "off-1", `{"name":"soon","ttl":"1s"}`)
	queued := createCommandAt(t, at, "off-1", `{"name":"later","params":{"n":1}}`)
	canceled := createCommandAt(t, at, "off-1", `{"name":"never"}`)
	if st := callAt(t, at, http.MethodDelete, "/v1/commands/"+canceled.ID, "", nil); st != http.StatusOK {
		t.Fatalf("cancel: %d", st)
	}

	// WebSocket device ws-1: sent, delivered, succeeded, failed.
	d := dialDeviceAt(t, at, "ws-1", "", nil)
	ids := map[string]string{}
	for _, name := range []string{"succeed", "fail", "deliver", "send"} {
		c := createCommandAt(t, at, "ws-1", fmt.Sprintf(`{"name":%q}`, name))
		if got := commandFrame(t, d); got != c.ID {
			t.Fatalf("ws-1 got command %s, want %s", got, c.ID)
		}
		ids[name] = c.ID
	}
	for _, f := range []string{
		`{"type":"command_ack","id":%q}`, `{"type":"command_result","id":%q,"status":"ok","result":{"done":true}}`,
	} {
		d.send(t, fmt.Sprintf(f, ids["succeed"]))
	}
	d.send(t, fmt.Sprintf(`{"type":"command_result","id":%q,"status":"error","message":"jammed"}`, ids["fail"]))
	d.send(t, fmt.Sprintf(`{"type":"command_ack","id":%q}`, ids["deliver"]))

	// MQTT device mq-1: one confirmed by its PUBACK, one not.
	_, got := mqttDevice(t, child.mqtt, "mq-1")
	mqDelivered := createCommandAt(t, at, "mq-1", `{"name":"open"}`)
	m, id := got.next(t)
	if id != mqDelivered.ID {
		t.Fatalf("mq-1 got %s, want %s", id, mqDelivered.ID)
	}
	m.Ack()
	mqSent := createCommandAt(t, at, "mq-1", `{"name":"close"}`)
	if _, id := got.next(t); id != mqSent.ID {
		t.Fatalf("mq-1 got %s, want %s", id, mqSent.ID)
	}

	want := map[string]string{
		queued.ID: "queued", expired.ID: "expired", canceled.ID: "canceled",
		ids["send"]: "sent", ids["deliver"]: "delivered", ids["succeed"]: "succeeded", ids["fail"]: "failed",
		mqDelivered.ID: "delivered", mqSent.ID: "sent",
	}
	for id, state := range want {
		waitCommandAt(t, at, id, state) // stored: what the crash must keep
	}
	// Still queued at the crash, almost always: its ttl runs out on the
	// hub's clock while the hub is down or just after, and the restarted
	// hub expires it instead of sending it.
	lapse := createCommandAt(t, at, "off-1", `{"name":"lapse","ttl":"2s"}`)
	before := eventsAt(t, at, "commands/#")

	child.kill()
	child = startChild(t, dataDir)
	at = child.http

	t.Run("nothing lost or gone back", func(t *testing.T) {
		for id, state := range want {
			if c := commandAt(t, at, id); c.State != state {
				t.Errorf("command %s (%s) is %s after the crash, want %s", id, c.Name, c.State, state)
			}
		}
		after := eventsAt(t, at, "commands/#")
		if len(after) < len(before) {
			t.Fatalf("%d command events before the crash, %d after", len(before), len(after))
		}
		for i := range before {
			if after[i].ID != before[i].ID || after[i].Data["state"] != before[i].Data["state"] {
				t.Fatalf("event %d changed across the crash: %v vs %v", i, before[i], after[i])
			}
		}
	})

	t.Run("WebSocket device gets only what it did not confirm", func(t *testing.T) {
		d := dialDeviceAt(t, at, "ws-1", "", nil)
		if seen := wsRepeats(t, at, d, "ws-1"); !slices.Equal(seen, []string{ids["send"]}) {
			t.Fatalf("ws-1 was sent %v after the restart, want only the unconfirmed %s", seen, ids["send"])
		}
		d.send(t, fmt.Sprintf(`{"type":"command_ack","id":%q}`, ids["send"]))
		d.send(t, fmt.Sprintf(`{"type":"command_result","id":%q,"status":"ok"}`, ids["send"]))
		d.send(t, fmt.Sprintf(`{"type":"command_result","id":%q,"status":"ok"}`, ids["deliver"]))
		waitCommandAt(t, at, ids["send"], "succeeded")
		waitCommandAt(t, at, ids["deliver"], "succeeded")
	})

	t.Run("MQTT device gets only what it did not confirm", func(t *testing.T) {
		cl, got := mqttDevice(t, child.mqtt, "mq-1")
		m, first := got.next(t)
		marker := createCommandAt(t, at, "mq-1", `{"name":"marker"}`)
		seen := []string{first}
		m.Ack()
		for first != marker.ID {
			m, first = got.next(t)
			m.Ack()
			if first != marker.ID {
				seen = append(seen, first)
			}
		}
		if !slices.Equal(seen, []string{mqSent.ID}) {
			t.Fatalf("mq-1 was sent %v after the restart, want only the unconfirmed %s", seen, mqSent.ID)
		}
		waitCommandAt(t, at, mqSent.ID, "delivered")
		publish(t, cl, "devices/mq-1/commands/"+mqSent.ID+"/result", 1, `{"status":"ok"}`)
		waitCommandAt(t, at, mqSent.ID, "succeeded")
	})

	t.Run("a pending command whose ttl ran out expires", func(t *testing.T) {
		waitCommandAt(t, at, lapse.ID, "expired")
		want[lapse.ID] = "expired" // its history is checked below too
	})

	t.Run("offline device gets its queued command only", func(t *testing.T) {
		d := dialDeviceAt(t, at, "off-1", "", nil)
		if seen := wsRepeats(t, at, d, "off-1"); !slices.Equal(seen, []string{queued.ID}) {
			t.Fatalf("off-1 was sent %v, want only the queued %s (not the expired or canceled ones)", seen, queued.ID)
		}
		d.send(t, fmt.Sprintf(`{"type":"command_result","id":%q,"status":"error","message":"no"}`, queued.ID))
		waitCommandAt(t, at, queued.ID, "failed")
	})

	t.Run("every command's history only moves forward", func(t *testing.T) {
		states := map[string][]string{}
		for _, e := range eventsAt(t, at, "commands/#") {
			id, _ := e.Data["id"].(string)
			states[id] = append(states[id], e.Data["state"].(string))
		}
		for id := range want {
			s := states[id]
			if len(s) == 0 || s[0] != "queued" {
				t.Errorf("command %s: history %v, want it to start queued", id, s)
			}
			for i := 1; i < len(s); i++ {
				if stateRank[s[i]] <= stateRank[s[i-1]] {
					t.Errorf("command %s: history %v goes back or repeats", id, s)
				}
			}
		}
	})
}
