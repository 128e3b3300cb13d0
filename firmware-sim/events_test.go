package firmwaresim

import (
	"errors"
	"testing"
)

func TestParseEventsPage(t *testing.T) {
	tests := []struct {
		name string
		in   string
		n    int
		err  bool
	}{
		{"empty", `[]`, 0, false},
		{"one with seq", `[{"id":"ab-0000000000000001","event":"telemetry","data":{"topic":"telemetry/d/temp","device":"d","metric":"temp","value":21.5,"unit":"Cel","ts":"2026-11-25T10:00:00.123Z","device_seq":42}}]`, 1, false},
		{"no seq", `[{"id":"x","event":"telemetry","data":{"device":"d","metric":"door","value":"open","ts":"2026-11-25T10:00:00.123Z"}}]`, 1, false},
		{"missing id", `[{"event":"telemetry","data":{}}]`, 0, true},
		{"error body", `{"error":{"code":"gone","message":"x"}}`, 0, true},
		{"seq of the wrong type", `[{"id":"x","data":{"device_seq":"1"}}]`, 0, true},
		{"truncated", `[{"id":"x"`, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := parseEventsPage([]byte(tt.in))
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if err != nil && !errors.Is(err, ErrHubResponse) {
				t.Fatalf("err %v does not wrap ErrHubResponse", err)
			}
			if len(page) != tt.n {
				t.Fatalf("%d events, want %d", len(page), tt.n)
			}
		})
	}
	page, _ := parseEventsPage([]byte(tests[1].in))
	if d := page[0].Data; d.Device != "d" || d.Metric != "temp" || d.DeviceSeq == nil || *d.DeviceSeq != 42 {
		t.Fatalf("parsed %+v", d)
	}
}

func TestEventMillis(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"2026-11-25T10:00:00.123Z", 1795600800123, true},
		{"2026-11-25T10:00:00Z", 1795600800000, true},
		{"2026-11-25T11:00:00.5+01:00", 1795600800500, true},
		{"yesterday", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, ok := eventMillis(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("eventMillis(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzParseEventsPage checks that a hub's events page never panics the
// parser and that every accepted event has an id.
func FuzzParseEventsPage(f *testing.F) {
	f.Add([]byte(`[{"id":"a-0000000000000001","event":"telemetry","data":{"device":"d","metric":"temp","ts":"2026-11-25T10:00:00.123Z","device_seq":1}}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		page, err := parseEventsPage(b)
		if err != nil {
			return
		}
		for _, ev := range page {
			if ev.ID == "" {
				t.Fatalf("accepted an event without id from %q", b)
			}
			if ms, ok := eventMillis(ev.Data.TS); !ok && ms != 0 {
				t.Fatalf("unparsable ts %q read as %d", ev.Data.TS, ms)
			}
		}
	})
}
