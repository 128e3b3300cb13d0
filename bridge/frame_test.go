package bridge

import (
	"testing"
	"time"
)

func TestParseFrame(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Frame
	}{
		{"heartbeat", `{"type":"heartbeat"}`, Frame{Type: FrameHeartbeat}},
		{"heartbeat with seq and ts", `{"type":"heartbeat","seq":3,"ts":1}`, Frame{Type: FrameHeartbeat, Seq: 3, HasSeq: true}},
		{"telemetry", `{"type":"telemetry","seq":42,"ts":1795600800123,"values":{"temp":21.5}}`, Frame{
			Type: FrameTelemetry, Seq: 42, HasSeq: true,
			Payload: Payload{Seq: 42, HasSeq: true, Readings: []Reading{{Metric: "temp", Value: num(21.5), Time: t1}}},
		}},
		{"telemetry without seq or ts", `{"values":{"a":"x","b":false},"type":"telemetry"}`, Frame{
			Type:    FrameTelemetry,
			Payload: Payload{Readings: []Reading{{Metric: "a", Value: StringValue("x")}, {Metric: "b", Value: BoolValue(false)}}},
		}},
		{"senml", `{"type":"telemetry","seq":1,"senml":[{"bn":"p.","n":"a","v":1,"u":"Cel"},{"n":"a","t":-1,"v":2}]}`, Frame{
			Type: FrameTelemetry, Seq: 1, HasSeq: true,
			Payload: Payload{Seq: 1, HasSeq: true, Readings: []Reading{
				{Metric: "p.a", Unit: "Cel", Value: num(1)},
				{Metric: "p.a", Value: num(2), Time: fixedNow.Add(-time.Second)},
			}},
		}},
		{"senml with frame ts", `{"type":"telemetry","ts":1795600800123,"senml":[{"n":"a","v":1},{"n":"b","t":-1,"v":2}]}`, Frame{
			Type: FrameTelemetry,
			Payload: Payload{Readings: []Reading{
				{Metric: "a", Value: num(1), Time: t1},
				{Metric: "b", Value: num(2), Time: fixedNow.Add(-time.Second)},
			}},
		}},
		{"unknown keys ignored", `{"type":"telemetry","id":"x","meta":{"a":[1,{}]},"values":{"a":1}}`, Frame{
			Type: FrameTelemetry, Payload: Payload{Readings: []Reading{{Metric: "a", Value: num(1)}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFrame([]byte(tt.in), nowFixed)
			if err != nil {
				t.Fatalf("parseFrame(%s): %v", tt.in, err)
			}
			if got.Type != tt.want.Type || got.Seq != tt.want.Seq || got.HasSeq != tt.want.HasSeq {
				t.Errorf("frame = %s/%d/%v, want %s/%d/%v", got.Type, got.Seq, got.HasSeq, tt.want.Type, tt.want.Seq, tt.want.HasSeq)
			}
			checkPayload(t, got.Payload, tt.want.Payload)
		})
	}
}

func TestParseFrameRejects(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		seq     uint64
		wantSeq bool // the error frame carries seq
	}{
		{"not JSON", `hello`, "invalid JSON", 0, false},
		{"empty", ``, "invalid JSON", 0, false},
		{"array", `[{"type":"heartbeat"}]`, "invalid JSON", 0, false},
		{"missing type", `{"seq":4,"values":{"a":1}}`, "type: missing", 4, true},
		{"unknown type", `{"type":"hello","seq":5}`, `type "hello": unknown frame type`, 5, true},
		{"type not string", `{"type":1}`, "type: must be a string", 0, false},
		{"bad metric before seq", `{"type":"telemetry","values":{"a b":1},"seq":42}`, `metric "a b": invalid name`, 42, true},
		{"nested value", `{"seq":7,"type":"telemetry","values":{"x":{"y":1}}}`, `value of "x": nested objects are not allowed`, 7, true},
		{"bad ts", `{"type":"telemetry","seq":8,"ts":"noon","values":{"a":1}}`, "ts: must be unix milliseconds", 8, true},
		{"bad seq", `{"type":"telemetry","seq":"8","values":{"a":1}}`, "seq: must be an integer", 0, false},
		{"no readings", `{"type":"telemetry","seq":9}`, "no readings", 9, true},
		{"empty values", `{"type":"telemetry","values":{}}`, "no readings", 0, false},
		{"empty senml", `{"type":"telemetry","senml":[]}`, "no readings", 0, false},
		{"values and senml", `{"type":"telemetry","values":{"a":1},"senml":[{"n":"b","v":1}]}`, "only one of them", 0, false},
		{"heartbeat with values", `{"type":"heartbeat","seq":2,"values":{"a":1}}`, "heartbeat frame: must not carry", 2, true},
		{"senml not array", `{"type":"telemetry","senml":{"n":"a"}}`, "senml: must be an array", 0, false},
		{"bad senml record", `{"type":"telemetry","seq":3,"senml":[{"n":"a"}]}`, "senml record 1: no value", 3, true},
		{"duplicate metric", `{"type":"telemetry","values":{"a":1,"a":2}}`, `metric "a": appears more than once`, 0, false},
		{"duplicate type", `{"type":"heartbeat","type":"telemetry"}`, `duplicate key "type"`, 0, false},
		{"broken after seq", `{"seq":11,"type":"telemetry","values":{"a":1`, "invalid JSON", 11, true},
		{"broken before seq", `{"type":"telemetry","values":{"a":},"seq":12}`, "invalid JSON", 0, false},
		{"trailing data", `{"type":"heartbeat","seq":13} x`, "unexpected data", 13, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseFrame([]byte(tt.in), nowFixed)
			checkRejected(t, err, tt.want)
			if f.HasSeq != tt.wantSeq || f.Seq != tt.seq {
				t.Errorf("error frame seq = %d/%v, want %d/%v", f.Seq, f.HasSeq, tt.seq, tt.wantSeq)
			}
			if len(f.Payload.Readings) != 0 {
				t.Errorf("error frame carries readings %+v", f.Payload.Readings)
			}
		})
	}
}
