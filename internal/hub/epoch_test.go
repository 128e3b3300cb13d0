package hub

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// deviceEpoch is the seq bookkeeping of a device record in the REST API.
type deviceEpoch struct {
	ID          string `json:"id"`
	Duplicates  uint64 `json:"duplicates"`
	SeqRestarts uint64 `json:"seq_restarts"`
	Boot        string `json:"boot"`
}

// checkEpoch checks the device's seq bookkeeping in GET /v1/devices/{id}
// and GET /v1/devices.
func checkEpoch(t *testing.T, h *Hub, want deviceEpoch) {
	t.Helper()
	var one deviceEpoch
	if code := getJSON(t, h, "/v1/devices/"+want.ID, &one); code != http.StatusOK || one != want {
		t.Errorf("GET /v1/devices/%s: %d %+v, want %+v", want.ID, code, one, want)
	}
	var all []deviceEpoch
	getJSON(t, h, "/v1/devices", &all)
	for _, d := range all {
		if d.ID == want.ID && d != want {
			t.Errorf("GET /v1/devices: %+v, want %+v", d, want)
		}
	}
}

// metricLine returns the line of metric name in GET /metrics.
func metricLine(t *testing.T, h *Hub, name string) string {
	t.Helper()
	resp, err := http.Get("http://" + h.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, name+" ") {
			return line
		}
	}
	return ""
}

// values returns the "n" values of the device's stored readings, in order.
func values(t *testing.T, h *Hub, device string) []float64 {
	t.Helper()
	var out []float64
	for _, e := range events(t, h, "telemetry/"+device+"/n") {
		out = append(out, e.Data["value"].(float64))
	}
	return out
}

func TestSeqEpochsAcrossTransports(t *testing.T) {
	h := startHub(t, testConfig(t))
	d := dialDevice(t, h, "e1")
	c := mqttClient(t, h, "e1-mqtt", nil)
	ws := func(frame string) {
		t.Helper()
		d.send(t, frame)
		if m := d.next(t); m["type"] != "ack" {
			t.Fatalf("%s: %v, want an ack", frame, m)
		}
	}
	mqttPub := func(payload string) { t.Helper(); publish(t, c, "devices/e1/telemetry", 1, payload) }

	ws(`{"type":"telemetry","seq":1,"boot":"b1","values":{"n":1}}`)
	ws(`{"type":"telemetry","seq":2,"boot":"b1","values":{"n":2}}`)
	ws(`{"type":"telemetry","seq":2,"boot":"b1","values":{"n":-2}}`) // resend: acked, not stored
	mqttPub(`{"seq":1,"boot":"b1","n":-1}`)                          // the same epoch over MQTT
	// The device reboots: its counter starts again under a new boot.
	ws(`{"type":"telemetry","seq":1,"boot":"b2","values":{"n":3}}`)
	mqttPub(`{"seq":2,"boot":"b2","ts":1795600799000,"values":{"n":4}}`)
	mqttPub(`{"seq":2,"boot":"b2","ts":1795600799000,"values":{"n":-4}}`)
	// A reboot without a boot id: a lower seq with a later ts.
	mqttPub(`{"seq":1,"ts":1795600800000,"n":5}`)
	ws(`{"type":"telemetry","seq":2,"ts":1795600801000,"values":{"n":6}}`)
	ws(`{"type":"telemetry","seq":2,"ts":1795600801000,"values":{"n":-6}}`) // resend, original ts
	mqttPub(`{"seq":1,"n":-7}`)                                             // no ts: a duplicate
	ws(`{"type":"telemetry","seq":3,"ts":1795600802000,"values":{"n":7}}`)

	got := values(t, h, "e1")
	if fmt.Sprint(got) != "[1 2 3 4 5 6 7]" {
		t.Errorf("stored values %v, want 1..7", got)
	}
	checkEpoch(t, h, deviceEpoch{ID: "e1", Duplicates: 5, SeqRestarts: 2})
	if line := metricLine(t, h, "telehub_seq_restarts_total"); line != "telehub_seq_restarts_total 2" {
		t.Errorf("metric line %q", line)
	}
	if line := metricLine(t, h, "telehub_duplicates_total"); line != "telehub_duplicates_total 5" {
		t.Errorf("metric line %q", line)
	}

	ws(`{"type":"telemetry","seq":3,"boot":"b9","values":{"n":8}}`)
	checkEpoch(t, h, deviceEpoch{ID: "e1", Duplicates: 5, SeqRestarts: 3, Boot: "b9"})
}

// The huge seq of the attack: 2^64-1.
const hugeSeq = "18446744073709551615"

func TestHugeSeqCannotSilenceADevice(t *testing.T) {
	h := startHub(t, testConfig(t))
	t.Run("mqtt", func(t *testing.T) {
		dev := mqttClient(t, h, "hm-device", nil)
		attacker := mqttClient(t, h, "hm-attacker", nil)
		for n := 1; n <= 5; n++ {
			publish(t, dev, "devices/hm/telemetry", 1, fmt.Sprintf(`{"seq":%d,"n":%d}`, n, n))
		}
		publish(t, attacker, "devices/hm/telemetry", 1, `{"seq":`+hugeSeq+`,"x":1}`)
		for n := 6; n <= 10; n++ {
			publish(t, dev, "devices/hm/telemetry", 1, fmt.Sprintf(`{"seq":%d,"n":%d}`, n, n))
		}
		publish(t, dev, "devices/hm/telemetry", 1, `{"seq":10,"n":-10}`) // a resend stays a duplicate
		if got := values(t, h, "hm"); len(got) != 10 {
			t.Errorf("stored %v, want 1..10", got)
		}
		checkEpoch(t, h, deviceEpoch{ID: "hm", Duplicates: 1, SeqRestarts: 2})
	})
	t.Run("ws", func(t *testing.T) {
		d := dialDevice(t, h, "hw")
		send := func(frame string) {
			t.Helper()
			d.send(t, frame)
			if m := d.next(t); m["type"] != "ack" {
				t.Fatalf("%s: %v, want an ack", frame, m)
			}
		}
		for n := 1; n <= 5; n++ {
			send(fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"n":%d}}`, n, n))
		}
		send(`{"type":"telemetry","seq":` + hugeSeq + `,"values":{"x":1}}`)
		for n := 6; n <= 10; n++ {
			send(fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"n":%d}}`, n, n))
		}
		if got := values(t, h, "hw"); len(got) != 10 {
			t.Errorf("stored %v, want 1..10", got)
		}
		checkEpoch(t, h, deviceEpoch{ID: "hw", SeqRestarts: 2})
	})
}

// TestCrashKeepsSeqEpochsExactlyOnce streams three seq epochs of one device
// (a boot, then a reboot without a boot id that only its ts reveals, then
// another boot), kills the hub with SIGKILL in each, and checks that every
// acknowledged reading of every epoch is stored exactly once.
func TestCrashKeepsSeqEpochsExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hubs as child processes")
	}
	const base = int64(1795600800000) // the device's clock, unix ms
	const span = 1_000_000            // ms between the epochs' clocks
	dataDir := t.TempDir()
	child := startChild(t, dataDir)
	boots := []string{"A", "", "C"}
	acked := make([]map[uint64]bool, len(boots))
	for e, boot := range boots {
		acked[e] = map[uint64]bool{}
		bootKey := ""
		if boot != "" {
			bootKey = fmt.Sprintf(`"boot":%q,`, boot)
		}
		frame := func(seq uint64) string {
			return fmt.Sprintf(`{"type":"telemetry","seq":%d,%s"ts":%d,"values":{"n":%d}}`,
				seq, bootKey, base+int64(e)*span+int64(seq), seq)
		}
		next, pending := uint64(1), []uint64(nil)
		for round := range 2 {
			stop := make(chan struct{})
			errc := make(chan error, 1)
			go func() { errc <- streamFrames(child.http, "epochy", frame, &next, &pending, acked[e], stop) }()
			time.Sleep(400 * time.Millisecond) // load, not synchronization
			if round == 0 {
				child.kill() // SIGKILL mid-stream
			} else {
				close(stop)
			}
			if err := <-errc; err != nil {
				t.Fatalf("epoch %d round %d: %v", e, round, err)
			}
			if round == 0 {
				child = startChild(t, dataDir)
			}
		}
		for i := 0; len(pending) > 0 && i < 5; i++ {
			stop := make(chan struct{})
			time.AfterFunc(500*time.Millisecond, func() { close(stop) })
			if err := streamFrames(child.http, "epochy", frame, &next, &pending, acked[e], stop); err != nil {
				t.Fatal(err)
			}
		}
		if len(acked[e]) < 50 {
			t.Fatalf("epoch %d: only %d readings acked: the test did not exercise much", e, len(acked[e]))
		}
	}

	count := make([]map[uint64]int, len(boots))
	for e := range count {
		count[e] = map[uint64]int{}
	}
	for _, ev := range eventsAt(t, child.http, "telemetry/epochy/n") {
		ts, err := time.Parse(time.RFC3339Nano, ev.Data["ts"].(string))
		if err != nil {
			t.Fatal(err)
		}
		e := (ts.UnixMilli() - base) / span
		count[e][uint64(ev.Data["device_seq"].(float64))]++
	}
	for e := range boots {
		for seq := range acked[e] {
			if count[e][seq] != 1 {
				t.Errorf("epoch %d: acked seq %d stored %d times", e, seq, count[e][seq])
			}
		}
		for seq, n := range count[e] {
			if n > 1 {
				t.Errorf("epoch %d: seq %d stored %d times", e, seq, n)
			}
		}
		t.Logf("epoch %d: %d readings acked, %d stored", e, len(acked[e]), len(count[e]))
	}
}
