package bridge

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseBootAndTime(t *testing.T) {
	long := strings.Repeat("b", MaxBoot)
	tests := []struct {
		name    string
		frame   bool
		payload string
		boot    string
		time    time.Time
	}{
		{"flat", false, `{"seq":1,"boot":"b7","ts":1795600800123,"a":1}`, "b7", t1},
		{"flat without ts", false, `{"boot":"b7","seq":1,"a":1}`, "b7", time.Time{}},
		{"wrapped", false, `{"boot":"2026-11-25 boot 3","seq":1,"values":{"a":1}}`, "2026-11-25 boot 3", time.Time{}},
		{"escaped", false, `{"boot":"b\u00e9","a":1}`, "bé", time.Time{}},
		{"64 bytes", false, `{"boot":"` + long + `","a":1}`, long, time.Time{}},
		{"neither", false, `{"seq":1,"a":1}`, "", time.Time{}},
		{"frame values", true, `{"type":"telemetry","seq":2,"boot":"b7","ts":1795600800123,"values":{"a":1}}`, "b7", t1},
		{"frame senml", true, `{"type":"telemetry","seq":2,"boot":"b8","senml":[{"n":"a","v":1}]}`, "b8", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Payload
			var err error
			if tt.frame {
				var f Frame
				f, err = parseFrame([]byte(tt.payload), nowFixed)
				p = f.Payload
			} else {
				p, err = parseTelemetry([]byte(tt.payload), nowFixed)
			}
			if err != nil {
				t.Fatalf("parse %s: %v", tt.payload, err)
			}
			if p.Boot != tt.boot || !p.Time.Equal(tt.time) {
				t.Errorf("boot %q time %v, want %q %v", p.Boot, p.Time, tt.boot, tt.time)
			}
			for _, rd := range p.Readings {
				if rd.Metric == "boot" {
					t.Errorf("boot became a metric: %+v", p.Readings)
				}
			}
		})
	}
}

func TestParseBootRejects(t *testing.T) {
	long := strings.Repeat("b", MaxBoot+1)
	payloads := map[string]string{
		"number":     `{"boot":7,"seq":1,"a":1}`,
		"empty":      `{"boot":"","seq":1,"a":1}`,
		"too long":   `{"boot":"` + long + `","a":1}`,
		"null":       `{"boot":null,"a":1}`,
		"object":     `{"boot":{"n":1},"a":1}`,
		"twice":      `{"boot":"a","boot":"b","a":1}`,
		"wrapped":    `{"boot":true,"values":{"a":1}}`,
		"bad string": "{\"boot\":\"\xff\",\"a\":1}",
	}
	for name, payload := range payloads {
		t.Run("telemetry "+name, func(t *testing.T) {
			_, err := parseTelemetry([]byte(payload), nowFixed)
			want := "boot"
			if name == "bad string" {
				want = "invalid UTF-8"
			}
			checkRejected(t, err, want)
		})
	}
	frames := map[string]string{
		"number":   `{"type":"telemetry","seq":4,"boot":1,"values":{"a":1}}`,
		"empty":    `{"type":"telemetry","seq":4,"boot":"","values":{"a":1}}`,
		"too long": `{"type":"telemetry","seq":4,"boot":"` + long + `","values":{"a":1}}`,
		"twice":    `{"type":"telemetry","seq":4,"boot":"a","boot":"a","values":{"a":1}}`,
	}
	for name, frame := range frames {
		t.Run("frame "+name, func(t *testing.T) {
			f, err := parseFrame([]byte(frame), nowFixed)
			checkRejected(t, err, "boot")
			if !f.HasSeq || f.Seq != 4 {
				t.Errorf("rejected frame seq = %d/%v, want 4 for the error answer", f.Seq, f.HasSeq)
			}
		})
	}
}

func TestTelemetryCarriesBootAndDeviceTime(t *testing.T) {
	st := &fakeStore{}
	b, err := New(Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	p, err := parseTelemetry([]byte(`{"seq":9,"boot":"b\"7","ts":1795600800123,"temp":1}`), nowFixed)
	if err != nil {
		t.Fatal(err)
	}
	in := Input{Device: "d1", Transport: TransportMQTT, Received: fixedNow}
	if err := b.Telemetry(in, p, nil); err != nil {
		t.Fatal(err)
	}
	w := st.all()[0]
	if !w.HasSeq || w.Seq != 9 || w.Boot != `b"7` || !w.DeviceTime.Equal(t1) {
		t.Errorf("write seq %d/%v boot %q time %v", w.Seq, w.HasSeq, w.Boot, w.DeviceTime)
	}
	var data struct {
		Seq  uint64 `json:"device_seq"`
		Boot string `json:"device_boot"`
	}
	if err := json.Unmarshal(w.Events[0].Data, &data); err != nil {
		t.Fatalf("data %s: %v", w.Events[0].Data, err)
	}
	if data.Seq != 9 || data.Boot != `b"7` {
		t.Errorf("data %s: want device_seq 9 and device_boot", w.Events[0].Data)
	}
}
