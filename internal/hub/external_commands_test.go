package hub

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/telehub/telehub/internal/mosquittotest"
)

// extDevice is a paho device on the external broker that subscribes to
// its commands, then says it is online.
type extDevice struct {
	id       string
	client   mqtt.Client
	commands chan map[string]any
	errors   chan string
}

func dialExtDevice(t *testing.T, brokerAddr, id string) *extDevice {
	t.Helper()
	d := &extDevice{id: id, commands: make(chan map[string]any, 100), errors: make(chan string, 100)}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + brokerAddr).SetClientID("ext-" + id).SetAutoReconnect(false)
	d.client = mqtt.NewClient(o)
	if tok := d.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device %s connect: %v", id, tok.Error())
	}
	t.Cleanup(func() { d.client.Disconnect(100) })
	subs := map[string]mqtt.MessageHandler{
		"devices/" + id + "/commands": func(_ mqtt.Client, m mqtt.Message) {
			var c map[string]any
			_ = json.Unmarshal(m.Payload(), &c)
			d.commands <- c
		},
		"devices/" + id + "/errors": func(_ mqtt.Client, m mqtt.Message) { d.errors <- string(m.Payload()) },
	}
	for topic, handler := range subs {
		if tok := d.client.Subscribe(topic, 1, handler); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", topic, tok.Error())
		}
	}
	d.publish(t, "devices/"+id+"/status", "online")
	return d
}

func (d *extDevice) publish(t *testing.T, topic, payload string) {
	t.Helper()
	if tok := d.client.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// nextCommand returns the next command published to the device.
func (d *extDevice) nextCommand(t *testing.T) map[string]any {
	t.Helper()
	select {
	case c := <-d.commands:
		return c
	case <-time.After(15 * time.Second):
		t.Fatalf("device %s got no command", d.id)
		return nil
	}
}

// nextError returns the next error answer published to the device.
func (d *extDevice) nextError(t *testing.T) string {
	t.Helper()
	select {
	case e := <-d.errors:
		return e
	case <-time.After(15 * time.Second):
		t.Fatalf("device %s got no error answer", d.id)
		return ""
	}
}

// TestExternalBrokerCommands delivers commands through a real Mosquitto
// to paho devices: publish, ack, results, invalid results, and a command
// queued while its device was away.
func TestExternalBrokerCommands(t *testing.T) {
	broker := mosquittotest.Start(t, "")
	cfg := testConfig(t)
	cfg.MQTTAddr = ""
	cfg.MQTTBroker = "tcp://" + broker.Addr
	h := startHub(t, cfg)
	waitFor(t, "/readyz to report the broker connected", func() bool {
		return getJSON(t, h, "/readyz", nil) == http.StatusOK
	})

	away := createCommand(t, h, "ext2", `{"name":"ping"}`) // ext2 is not there yet
	d := dialExtDevice(t, broker.Addr, "ext1")
	waitFor(t, "ext1 online", func() bool {
		var dev struct{ Online bool }
		return getJSON(t, h, "/v1/devices/ext1", &dev) == http.StatusOK && dev.Online
	})

	ok := createCommand(t, h, "ext1", `{"name":"set_interval","params":{"s":5}}`)
	got := d.nextCommand(t)
	params, _ := got["params"].(map[string]any)
	if got["id"] != ok.ID || got["name"] != "set_interval" || params["s"] != 5.0 || got["expires"] != ok.Expires {
		t.Fatalf("device got %v, want command %+v", got, ok)
	}
	waitCommand(t, h, ok.ID, "sent")
	d.publish(t, "devices/ext1/commands/"+ok.ID+"/ack", "")
	waitCommand(t, h, ok.ID, "delivered")
	d.publish(t, "devices/ext1/commands/"+ok.ID+"/result", `{"status":"ok","result":{"interval":5}}`)
	if c := waitCommand(t, h, ok.ID, "succeeded"); c.Result["interval"] != 5.0 {
		t.Fatalf("succeeded without its result: %+v", c)
	}

	bad := createCommand(t, h, "ext1", `{"name":"reboot"}`)
	if c := d.nextCommand(t); c["id"] != bad.ID {
		t.Fatalf("device got %v, want %s", c, bad.ID)
	}
	d.publish(t, "devices/ext1/commands/"+bad.ID+"/result", `{"status":"error","message":"busy"}`)
	if c := waitCommand(t, h, bad.ID, "failed"); c.Message != "busy" {
		t.Fatalf("failed command %+v", c)
	}
	var states []string
	for _, e := range events(t, h, "commands/ext1") {
		if e.Data["id"] == ok.ID {
			states = append(states, fmt.Sprint(e.Data["state"]))
		}
	}
	if fmt.Sprint(states) != "[queued sent delivered succeeded]" {
		t.Fatalf("events of %s: %v", ok.ID, states)
	}

	// Invalid results are refused with an error answer and an errors/ext1 event.
	for _, p := range []struct{ topic, payload string }{
		{"devices/ext1/commands/" + bad.ID + "/result", `{"status":`},         // bad JSON
		{"devices/ext1/commands/00000000000000aa/result", `{"status":"ok"}`},  // unknown id
		{"devices/ext1/commands/" + away.ID + "/result", `{"status":"ok"}`},   // another device's
		{"devices/ext1/commands/" + bad.ID + "/result", `{"status":"maybe"}`}, // bad status
	} {
		d.publish(t, p.topic, p.payload)
		var answer struct{ Code, Topic string }
		if err := json.Unmarshal([]byte(d.nextError(t)), &answer); err != nil || answer.Topic != p.topic {
			t.Fatalf("error answer for %s %s: %+v, %v", p.topic, p.payload, answer, err)
		}
	}
	waitFor(t, "four errors/ext1 events", func() bool { return len(events(t, h, "errors/ext1")) == 4 })
	if c := commandState(t, h, away.ID); c.State != "queued" {
		t.Fatalf("ext2's command is %s after ext1 answered it, want queued", c.State)
	}
	if c := commandState(t, h, bad.ID); c.State != "failed" {
		t.Fatalf("a refused result changed %s to %s", bad.ID, c.State)
	}

	// ext2 comes: its queued command is published once it is online.
	d2 := dialExtDevice(t, broker.Addr, "ext2")
	if c := d2.nextCommand(t); c["id"] != away.ID {
		t.Fatalf("ext2 got %v, want its queued %s", c, away.ID)
	}
	d2.publish(t, "devices/ext2/commands/"+away.ID+"/result", `{"status":"ok"}`)
	waitCommand(t, h, away.ID, "succeeded")
}

// TestEmbeddedBrokerCommandAck: the ack topic is accepted on the embedded
// broker too, where the PUBACK already confirmed the command; an ack for an
// unknown command is refused like a bad result.
func TestEmbeddedBrokerCommandAck(t *testing.T) {
	h := startHub(t, testConfig(t))
	c := createCommand(t, h, "valve-2", `{"name":"open"}`)
	cl := mqttClient(t, h, "valve-2", func(o *mqtt.ClientOptions) {
		o.SetDefaultPublishHandler(func(mqtt.Client, mqtt.Message) {})
	})
	subscribe(t, cl, "devices/valve-2/commands")
	waitCommand(t, h, c.ID, "delivered")
	publish(t, cl, "devices/valve-2/commands/"+c.ID+"/ack", 1, "")
	publish(t, cl, "devices/valve-2/commands/00000000000000aa/ack", 1, "")
	waitFor(t, "the refused ack's event", func() bool { return len(events(t, h, "errors/valve-2")) == 1 })
	if got := commandState(t, h, c.ID); got.State != "delivered" {
		t.Fatalf("a repeated confirmation moved the command to %s", got.State)
	}
}
