package firmwaresim

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/telehub/telehub/internal/topic"
)

var testEntry = entry{
	seq: 42, ts: 1764064800123,
	r: Reading{Temp: 21.5, Hum: 40.1, Energy: 12.3456, Door: DoorOpen, Pump: true},
}

var testValues = map[string]any{"temp": 21.5, "hum": 40.1, "energy": 12.3456, "door": "open", "pump": true}

func decode(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	return v
}

func TestPayloadShapes(t *testing.T) {
	e := testEntry
	senml := []any{
		map[string]any{"bt": 1764064800.123, "n": "temp", "u": "Cel", "v": 21.5},
		map[string]any{"n": "hum", "u": "%RH", "v": 40.1},
		map[string]any{"n": "energy", "u": "kWh", "v": 12.3456},
		map[string]any{"n": "door", "vs": "open"},
		map[string]any{"n": "pump", "vb": true},
	}
	flat := map[string]any{"seq": 42.0, "ts": 1764064800123.0}
	for k, v := range testValues {
		flat[k] = v
	}
	tests := []struct {
		name string
		got  []byte
		want any
	}{
		{"ws values", appendWSFrame(nil, &e, false), map[string]any{
			"type": "telemetry", "seq": 42.0, "ts": 1764064800123.0, "values": testValues}},
		{"ws senml", appendWSFrame(nil, &e, true), map[string]any{
			"type": "telemetry", "seq": 42.0, "senml": senml}},
		{"mqtt json", appendMQTTPayload(nil, &e, FormatJSON), flat},
		{"mqtt wrapped", appendMQTTPayload(nil, &e, FormatWrapped), map[string]any{
			"seq": 42.0, "ts": 1764064800123.0, "values": testValues}},
		{"mqtt senml", appendMQTTPayload(nil, &e, FormatSenML), senml},
		{"ws heartbeat", wsHeartbeat, map[string]any{"type": "heartbeat"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decode(t, tt.got); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %s\nwant %v", tt.got, tt.want)
			}
		})
	}
}

func TestPlainValues(t *testing.T) {
	e := testEntry
	want := []string{"21.5", "40.1", "12.3456", "open", "true"}
	for i := range metricNames {
		if got := string(appendPlainValue(nil, &e.r, i)); got != want[i] {
			t.Errorf("plain %s = %q, want %q", metricNames[i], got, want[i])
		}
	}
}

func TestAppendSeconds(t *testing.T) {
	tests := []struct {
		ms   int64
		want string
	}{
		{0, "0.000"}, {5, "0.005"}, {1764064800123, "1764064800.123"}, {1000, "1.000"}, {1090, "1.090"},
	}
	for _, tt := range tests {
		if got := string(appendSeconds(nil, tt.ms)); got != tt.want {
			t.Errorf("appendSeconds(%d) = %q, want %q", tt.ms, got, tt.want)
		}
	}
}

func TestMalformedPayloadsAreBad(t *testing.T) {
	for i, b := range append(malformedWS[:], malformedMQTT[:]...) {
		var v map[string]any
		err := json.Unmarshal(b, &v)
		if err == nil && !hasBadPart(v) {
			t.Errorf("malformed payload %d %s looks valid", i, b)
		}
	}
}

// hasBadPart reports whether a decoded payload has a nested value, a bad
// metric name or a seq that is not a number.
func hasBadPart(v map[string]any) bool {
	if seq, ok := v["seq"]; ok {
		if _, num := seq.(float64); !num {
			return true
		}
	}
	if vals, ok := v["values"].(map[string]any); ok {
		v = vals
	}
	for k, x := range v {
		switch x.(type) {
		case map[string]any, []any:
			return true
		}
		if !topic.ValidName(k) {
			return true
		}
	}
	return false
}

func BenchmarkAppendWSFrame(b *testing.B) {
	e := testEntry
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendWSFrame(buf[:0], &e, false)
	}
}

func TestPayloadBootAndNoClock(t *testing.T) {
	e := testEntry
	e.boot, e.noTS = "mf2x1k-3", true
	flat := map[string]any{"seq": 42.0, "boot": "mf2x1k-3"}
	for k, v := range testValues {
		flat[k] = v
	}
	tests := []struct {
		name string
		got  []byte
		want any
	}{
		{"ws values", appendWSFrame(nil, &e, false), map[string]any{
			"type": "telemetry", "seq": 42.0, "boot": "mf2x1k-3", "values": testValues}},
		{"mqtt json", appendMQTTPayload(nil, &e, FormatJSON), flat},
		{"mqtt wrapped", appendMQTTPayload(nil, &e, FormatWrapped), map[string]any{
			"seq": 42.0, "boot": "mf2x1k-3", "values": testValues}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decode(t, tt.got); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("%s\ngot  %v\nwant %v", tt.got, got, tt.want)
			}
		})
	}
}
