package storage

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/telehub/telehub/bridge"
)

func TestEventRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		kind  bridge.Kind
		ms    int64
		topic string
		data  []byte
	}{
		{"telemetry", bridge.KindTelemetry, t0.UnixMilli(), "telemetry/d1/temp", []byte(`{"value":21.5}`)},
		{"empty data", bridge.KindPresence, 0, "presence/d1", nil},
		{"negative time", bridge.KindError, -1, "errors/d1", []byte("x")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := appendEvent(nil, tt.kind, tt.ms, tt.topic, tt.data)
			f, err := decodeEvent(v)
			if err != nil {
				t.Fatal(err)
			}
			if f.kind != tt.kind || f.ms != tt.ms || string(f.topic) != tt.topic || !bytes.Equal(f.data, tt.data) {
				t.Errorf("decoded %+v", f)
			}
			if ms, err := eventTime(v); err != nil || ms != tt.ms {
				t.Errorf("eventTime = %d %v, want %d", ms, err, tt.ms)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	good := appendDevice(nil, &deviceRec{transport: "ws", metrics: []string{"a", "b"}})
	tests := []struct {
		name   string
		decode func([]byte) error
		v      []byte
	}{
		{"event empty", decodeEventErr, nil},
		{"event truncated time", decodeEventErr, []byte{1, 0x80}},
		{"event topic longer than value", decodeEventErr, []byte{1, 0, 5, 'a'}},
		{"event time empty", eventTimeErr, nil},
		{"event time truncated", eventTimeErr, []byte{1}},
		{"device empty", decodeDeviceErr, nil},
		{"device truncated", decodeDeviceErr, good[:len(good)-1]},
		{"device trailing bytes", decodeDeviceErr, append(bytes.Clone(good), 0)},
		{"device too many metrics", decodeDeviceErr, []byte{0, 0, 0, 0, 0, 0, 200}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.decode(tt.v); err == nil {
				t.Errorf("decoded %x", tt.v)
			}
		})
	}
}

func decodeEventErr(v []byte) error  { _, err := decodeEvent(v); return err }
func eventTimeErr(v []byte) error    { _, err := eventTime(v); return err }
func decodeDeviceErr(v []byte) error { _, err := decodeDevice(v); return err }

func FuzzDecodeEvent(f *testing.F) {
	f.Add(appendEvent(nil, bridge.KindTelemetry, t0.UnixMilli(), "telemetry/d1/temp", []byte(`{"value":1}`)))
	f.Add([]byte{})
	f.Add([]byte{1, 0x80})
	f.Fuzz(func(t *testing.T, v []byte) {
		fields, err := decodeEvent(v)
		ms, terr := eventTime(v)
		if err != nil {
			return
		}
		if terr != nil || ms != fields.ms {
			t.Fatalf("eventTime = %d %v, decodeEvent time %d", ms, terr, fields.ms)
		}
		again := appendEvent(nil, fields.kind, fields.ms, string(fields.topic), fields.data)
		g, err := decodeEvent(again)
		if err != nil || !reflect.DeepEqual(g, fields) {
			t.Fatalf("re-encoded event decodes to %+v %v, want %+v", g, err, fields)
		}
	})
}

func FuzzDecodeDevice(f *testing.F) {
	f.Add(appendDevice(nil, &deviceRec{
		transport: "mqtt", online: true, hasSeq: true, session: 7, seq: 42,
		firstMs: t0.UnixMilli(), lastMs: t0.UnixMilli() + 1000, metrics: []string{"hum", "temp"},
	}))
	f.Add(appendDevice(nil, &deviceRec{
		hasSeq: true, seq: 3, hasTS: true, tsMicro: t0.UnixMicro(), boot: "b7", duplicates: 2, restarts: 1,
	}))
	f.Add(appendDevice(nil, &deviceRec{
		hasSeq: true, seq: 30, boot: "b1", ranges: seqRanges{{1, 7}, {9, 9}, {12, 30}},
	}))
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 200})
	f.Fuzz(func(t *testing.T, v []byte) {
		r, err := decodeDevice(v)
		if err != nil {
			return
		}
		again, err := decodeDevice(appendDevice(nil, &r))
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("re-encoded record decodes to %+v %v, want %+v", again, err, r)
		}
	})
}
