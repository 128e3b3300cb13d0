package firmwaresim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"
)

// hubCommand is a command object of the hub's REST API.
type hubCommand struct {
	ID      string          `json:"id"`
	Device  string          `json:"device"`
	Name    string          `json:"name"`
	State   string          `json:"state"`
	Status  string          `json:"status"`
	Result  json.RawMessage `json:"result"`
	Message string          `json:"message"`
}

func (c hubCommand) final() bool {
	return c.State == "succeeded" || c.State == "failed" || c.State == "expired" || c.State == "canceled"
}

// createCommand sends device a command through the hub's REST API.
func createCommand(t *testing.T, hubURL, device, body string) hubCommand {
	t.Helper()
	resp, err := http.Post(hubURL+"/v1/devices/"+device+"/commands", "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c hubCommand
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create command %s for %s: HTTP %d, %v", body, device, resp.StatusCode, err)
	}
	return c
}

func getCommand(t *testing.T, hubURL, id string) hubCommand {
	t.Helper()
	resp, err := http.Get(hubURL + "/v1/commands/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c hubCommand
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET command %s: HTTP %d, %v", id, resp.StatusCode, err)
	}
	return c
}

// waitFinal waits until command id is in a final state and returns it.
func waitFinal(t *testing.T, hubURL, id string) hubCommand {
	t.Helper()
	var c hubCommand
	waitFor(t, "command "+id+" to end", func() bool { c = getCommand(t, hubURL, id); return c.final() })
	return c
}

// commandEvents returns the states of command id in the order of its
// stored events on commands/{device}, once the event of its final state
// final is there.
func commandEvents(t *testing.T, hubURL, device, id, final string) []string {
	t.Helper()
	var states []string
	waitFor(t, "the event of "+id+" "+final, func() bool {
		states = readCommandEvents(t, hubURL, device, id)
		return slices.Contains(states, final)
	})
	return states
}

func readCommandEvents(t *testing.T, hubURL, device, id string) []string {
	t.Helper()
	resp, err := http.Get(hubURL + "/v1/events?limit=1000&topic=" + url.QueryEscape("commands/"+device))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page []struct {
		Data hubCommand `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, e := range page {
		if e.Data.ID == id {
			states = append(states, e.Data.State)
		}
	}
	return states
}

// TestE2ECommands commands a simulated device through a real hub, over
// WebSocket and over the embedded MQTT broker: ping succeeds with its
// result, set_interval succeeds and changes the rate, an unknown name and
// bad params fail with a message, and every state change is an event.
func TestE2ECommands(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	for _, tr := range []Transport{TransportWS, TransportMQTT} {
		t.Run(string(tr), func(t *testing.T) {
			h := startRealHub(t, nil)
			hubURL := "http://" + h.HTTPAddr()
			cfg := Config{Hub: hubURL, MQTT: "tcp://" + h.MQTTAddr(), Transport: tr, Rate: 1, DrainTimeout: 10 * time.Second}
			s, stop := startSim(t, cfg)
			waitFor(t, "the device to connect", func() bool { return s.stats.connects.Load() == 1 })
			ping := createCommand(t, hubURL, "sim-0", `{"name":"ping"}`)
			fast := createCommand(t, hubURL, "sim-0", `{"name":"set_interval","params":{"interval":"10ms"}}`)
			unknown := createCommand(t, hubURL, "sim-0", `{"name":"self_destruct"}`)
			badParams := createCommand(t, hubURL, "sim-0", `{"name":"set_interval","params":{"interval":"soon"}}`)
			for _, tt := range []struct {
				c                hubCommand
				state, result    string
				message          string
				wantEventsStates bool
			}{
				{ping, "succeeded", `{"pong":true}`, "", true},
				{fast, "succeeded", `{"interval_ms":10}`, "", false},
				{unknown, "failed", "", `unknown command "self_destruct": this device knows set_interval, reboot and ping`, true},
				{badParams, "failed", "", `interval "soon" is not a duration like "500ms" or "2s"`, false},
			} {
				got := waitFinal(t, hubURL, tt.c.ID)
				if got.State != tt.state || string(got.Result) != tt.result || got.Message != tt.message {
					t.Errorf("%s: %+v, want %s %s %q", tt.c.Name, got, tt.state, tt.result, tt.message)
				}
				want := []string{"queued", "sent", "delivered", tt.state}
				if ev := commandEvents(t, hubURL, "sim-0", tt.c.ID, tt.state); tt.wantEventsStates && !slices.Equal(ev, want) {
					t.Errorf("%s: events %v, want %v", tt.c.Name, ev, want)
				}
			}
			d := s.devices[0]
			seq := d.nextSeq()
			// At the old rate (1/s) 100 readings take 100 s, past waitFor's guard.
			waitFor(t, "readings at the new interval", func() bool { return d.nextSeq() >= seq+100 })
			sum, err := stop()
			if err != nil {
				t.Fatal(err)
			}
			if sum.Commands != (Commands{Received: 4, OK: 2, Failed: 2}) || sum.Unacked != 0 {
				t.Fatalf("commands %+v, unacked %d", sum.Commands, sum.Unacked)
			}
		})
	}
}

// TestE2ECommandFailRate: with --command-fail-rate 1 every command ends
// failed, a reboot too (and the device does not reboot).
func TestE2ECommandFailRate(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	h := startRealHub(t, nil)
	hubURL := "http://" + h.HTTPAddr()
	cfg := Config{Hub: hubURL, MQTT: "tcp://" + h.MQTTAddr(), Transport: TransportMixed, Devices: 2,
		CommandFailRate: 1, DrainTimeout: 10 * time.Second}
	s, stop := startSim(t, cfg)
	waitFor(t, "the devices to connect", func() bool { return s.stats.connects.Load() == 2 })
	var cmds []hubCommand
	for _, dev := range []string{"sim-0", "sim-1"} { // WebSocket, MQTT
		cmds = append(cmds, createCommand(t, hubURL, dev, `{"name":"ping"}`), createCommand(t, hubURL, dev, `{"name":"reboot"}`))
	}
	for _, c := range cmds {
		got := waitFinal(t, hubURL, c.ID)
		if got.State != "failed" || got.Status != "error" || got.Message != "simulated failure (--command-fail-rate)" {
			t.Errorf("%s of %s: %+v", c.Name, c.Device, got)
		}
	}
	sum, err := stop()
	if err != nil {
		t.Fatal(err)
	}
	if sum.Commands != (Commands{Received: 4, Failed: 4}) || sum.Reboots != 0 {
		t.Fatalf("commands %+v, reboots %d", sum.Commands, sum.Reboots)
	}
}

// TestE2ECommandedRebootKeepsEveryReading reboots a WebSocket and an MQTT
// device by command in the middle of a run against a real hub: each
// command ends succeeded (never stuck in sent) with the device's new boot,
// is run once even when the hub sends it again after the reboot, the
// devices restart
// their seq at 1 in a new epoch, and verify finds every acked reading of
// both epochs stored exactly once.
func TestE2ECommandedRebootKeepsEveryReading(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	h := startRealHub(t, nil)
	hubURL := "http://" + h.HTTPAddr()
	cfg := Config{
		Hub: hubURL, MQTT: "tcp://" + h.MQTTAddr(), Transport: TransportMixed, Devices: 2, Rate: 50,
		CommandDelay: 50 * time.Millisecond, BackoffMin: 5 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		DrainTimeout: 30 * time.Second, Verify: true,
	}
	s, stop := startSim(t, cfg)
	waitAcks(t, s, 100)
	reboots := []hubCommand{createCommand(t, hubURL, "sim-0", `{"name":"reboot"}`), createCommand(t, hubURL, "sim-1", `{"name":"reboot"}`)}
	for i, c := range reboots {
		got := waitFinal(t, hubURL, c.ID)
		d := s.devices[i]
		d.mu.Lock()
		boot, epoch := d.boot, d.epoch
		d.mu.Unlock()
		if got.State != "succeeded" || string(got.Result) != `{"rebooted":true,"boot":"`+boot+`"}` || epoch != 1 {
			t.Fatalf("reboot of %s: %+v; device boot %q epoch %d", c.Device, got, boot, epoch)
		}
		// An MQTT device that reboots before its PUBACK went out gets the
		// command again after the reboot, knows its id, and answers:
		// then the command goes from sent to succeeded.
		ev := commandEvents(t, hubURL, c.Device, c.ID, "succeeded")
		if !slices.Equal(ev, []string{"queued", "sent", "delivered", "succeeded"}) &&
			!slices.Equal(ev, []string{"queued", "sent", "succeeded"}) {
			t.Fatalf("reboot of %s: events %v (repeats %d)", c.Device, ev, s.stats.cmdRepeats.Load())
		}
	}
	waitAcks(t, s, 200)
	sum, err := stop()
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("readings %d acked %d reboots %d (%d lost); verify %+v", sum.Readings, sum.Acked, sum.Reboots, sum.RebootLost, *sum.Verify)
	requireVerified(t, sum)
	if sum.Reboots != 2 || sum.Commands.Received != 2 || sum.Commands.OK != 2 || sum.Commands.Failed != 0 {
		t.Fatalf("reboots %d, commands %+v", sum.Reboots, sum.Commands)
	}
	for _, d := range s.devices {
		if n := ackedInEpoch(d, 1); n == 0 || ackedInEpoch(d, 0) == 0 {
			t.Fatalf("%s: acked readings by epoch %d, %d: want some before and after the reboot", d.id, ackedInEpoch(d, 0), n)
		}
	}
}

// ackedInEpoch counts the readings of seq epoch ep the hub acked.
func ackedInEpoch(d *device, ep int32) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, le := range d.log {
		if le.epoch == ep && le.flags&flagAcked != 0 {
			n++
		}
	}
	return n
}
