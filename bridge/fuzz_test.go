package bridge

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/telehub/telehub/internal/topic"
)

// Seeds shared by the f.Add calls; the files under testdata/fuzz add more.
var (
	telemetrySeeds = []string{
		`{"temp":21.5,"hum":40,"door":"open","alarm":false}`,
		`{"ts":1795600800123,"seq":42,"temp":1}`,
		`{"seq":1,"boot":"b7","temp":1}`, `{"boot":"","seq":1,"values":{"a":1}}`,
		`{"ts":"2026-11-25T10:00:00.123Z","seq":7,"values":{"a":1,"b":"x"}}`,
		`[{"bn":"p.","bt":1795600800,"bu":"Cel","n":"a","v":1},{"n":"b","t":-1,"vs":"x"},{"n":"c","vb":true}]`,
		`{"a":{"b":1}}`, `{"a":[1]}`, `{"a":null}`, `{"a b":1}`, `{"seq":1.5,"a":1}`,
		`{"s":"\u00e9\ud83d\ude00\ud800"}`, `[{"n":"a","v":1,"x_":1}]`, `{"a":1e400}`,
	}
	frameSeeds = []string{
		`{"type":"telemetry","seq":42,"ts":1795600800123,"values":{"temp":21.5}}`,
		`{"type":"telemetry","senml":[{"n":"a","v":1}]}`,
		`{"type":"telemetry","seq":1,"boot":"b\u00e9","values":{"a":1}}`,
		`{"type":"heartbeat"}`, `{"type":"x","seq":1}`, `{"seq":3,"values":{"a b":1}}`,
	}
)

// checkRejection fails unless err is an *Error with a known code and a
// bounded message.
func checkRejection(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeBadRequest {
		t.Fatalf("error %v (%T) is not a bad_request *Error", err, err)
	}
	if e.Message == "" || len(e.Message) > 1024 {
		t.Fatalf("error message of %d bytes: %.200q", len(e.Message), e.Message)
	}
}

// checkReadings checks the invariants of accepted readings and that their
// events encode to valid JSON holding the same values.
func checkReadings(t *testing.T, p Payload) {
	t.Helper()
	if len(p.Readings) == 0 {
		t.Fatal("accepted a payload without readings")
	}
	for _, rd := range p.Readings {
		if err := topic.ValidMetric(rd.Metric); err != nil {
			t.Fatalf("accepted metric: %v", err)
		}
		switch rd.Value.Kind {
		case Number:
			if math.IsNaN(rd.Value.Num) || math.IsInf(rd.Value.Num, 0) {
				t.Fatalf("accepted non-finite %v", rd.Value.Num)
			}
		case String:
			if !utf8.ValidString(rd.Value.Str) {
				t.Fatalf("accepted invalid UTF-8 %q", rd.Value.Str)
			}
		case Bool:
		default:
			t.Fatalf("reading without a value: %+v", rd)
		}
		if !utf8.ValidString(rd.Unit) {
			t.Fatalf("accepted unit %q", rd.Unit)
		}
	}
	for i, ev := range buildTelemetry("d1", fixedNow, &p) {
		var data, state map[string]any
		if err := json.Unmarshal(ev.Data, &data); err != nil {
			t.Fatalf("data %s: %v", ev.Data, err)
		}
		if err := json.Unmarshal(ev.State, &state); err != nil {
			t.Fatalf("state %s: %v", ev.State, err)
		}
		if !sameValue(data["value"], p.Readings[i].Value) || !sameValue(state["value"], p.Readings[i].Value) {
			t.Fatalf("value %+v encoded as %s", p.Readings[i].Value, ev.Data)
		}
	}
}

// sameValue reports whether the encoding/json value j equals v.
func sameValue(j any, v Value) bool {
	switch v.Kind {
	case Number:
		f, ok := j.(float64)
		return ok && f == v.Num
	case String:
		s, ok := j.(string)
		return ok && s == v.Str
	case Bool:
		b, ok := j.(bool)
		return ok && b == v.Bool
	}
	return false
}

// checkAgainstEncodingJSON decodes an accepted flat or wrapped object with
// encoding/json and compares every metric.
func checkAgainstEncodingJSON(t *testing.T, payload []byte, p Payload) {
	t.Helper()
	var obj map[string]any
	if json.Unmarshal(payload, &obj) != nil {
		return // a SenML pack
	}
	metrics := obj
	if values, ok := obj["values"].(map[string]any); ok {
		metrics = values
	} else {
		delete(metrics, "ts")
		delete(metrics, "seq")
		delete(metrics, "boot")
	}
	if len(metrics) != len(p.Readings) {
		t.Fatalf("encoding/json sees %d metrics, the parser %d", len(metrics), len(p.Readings))
	}
	for _, rd := range p.Readings {
		if !sameValue(metrics[rd.Metric], rd.Value) {
			t.Fatalf("metric %q: encoding/json %#v, parser %+v", rd.Metric, metrics[rd.Metric], rd.Value)
		}
	}
}

func FuzzParseTelemetry(f *testing.F) {
	for _, s := range telemetrySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		p, err := parseTelemetry(payload, nowFixed)
		if err != nil {
			checkRejection(t, err)
			return
		}
		if !json.Valid(payload) {
			t.Fatalf("accepted invalid JSON %q", payload)
		}
		checkReadings(t, p)
		checkAgainstEncodingJSON(t, payload, p)
	})
}

func FuzzParsePlain(f *testing.F) {
	for _, s := range []string{"21.5", "true", "false", "open", "NaN", " 1e3 ", "", "\xff"} {
		f.Add("temp", []byte(s))
	}
	f.Add("a b", []byte("1"))
	f.Fuzz(func(t *testing.T, metric string, payload []byte) {
		p, err := ParsePlain(metric, payload)
		if err != nil {
			checkRejection(t, err)
			return
		}
		checkReadings(t, p)
		if len(p.Readings) != 1 || p.Readings[0].Metric != metric {
			t.Fatalf("readings %+v", p.Readings)
		}
		if v := p.Readings[0].Value; v.Kind == String && (v.Str == "" || v.Str != strings.TrimSpace(v.Str)) {
			t.Fatalf("string value %q not trimmed or empty", v.Str)
		}
	})
}

func FuzzParseFrame(f *testing.F) {
	for _, s := range frameSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := parseFrame(b, nowFixed)
		if err != nil {
			checkRejection(t, err)
			if !fr.HasSeq && fr.Seq != 0 {
				t.Fatalf("error frame with seq %d but no HasSeq", fr.Seq)
			}
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		switch fr.Type {
		case FrameHeartbeat:
			if len(fr.Payload.Readings) != 0 {
				t.Fatal("heartbeat with readings")
			}
		case FrameTelemetry:
			checkReadings(t, fr.Payload)
			if fr.Payload.Seq != fr.Seq || fr.Payload.HasSeq != fr.HasSeq {
				t.Fatal("payload seq differs from frame seq")
			}
		default:
			t.Fatalf("type %q", fr.Type)
		}
	})
}
