package firmwaresim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseMillis(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1970-01-01T00:00:00.000Z", 0, true},
		{"2026-11-25T10:00:00.123Z", time.Date(2026, 11, 25, 10, 0, 0, 123e6, time.UTC).UnixMilli(), true},
		{"2024-02-29T23:59:59.999Z", time.Date(2024, 2, 29, 23, 59, 59, 999e6, time.UTC).UnixMilli(), true},
		{"1969-12-31T23:59:59.999Z", -1, true},
		{"0000-03-01T00:00:00.000Z", time.Date(0, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), true},
		{"2026-11-25T10:00:00Z", time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixMilli(), true},          // no fraction: slow path
		{"2026-11-25T11:00:00.5+01:00", time.Date(2026, 11, 25, 10, 0, 0, 5e8, time.UTC).UnixMilli(), true}, // offset: slow path
		{"2023-02-29T00:00:00.000Z", 0, false},
		{"2026-13-01T00:00:00.000Z", 0, false},
		{"2026-11-25T24:00:00.000Z", 0, false},
		{"2026-11-25T10:60:00.000Z", 0, false},
		{"2026-11-25T10:00:60.000Z", 0, false},
		{"2026-11-25 10:00:00.000Z", 0, false},
		{"2026-11-25T10:00:00.000", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseMillis([]byte(tt.in))
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseMillis(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestDataMillis(t *testing.T) {
	tests := []struct {
		name, data string
		want       int64
		ok         bool
	}{
		{"telemetry", `{"topic":"telemetry/d/temp","value":1,"ts":"1970-01-01T00:00:01.000Z","device_seq":3}`, 1000, true},
		{"ts-like string value first", `{"value":"\"ts\":\"1970-01-01T00:00:09.000Z","ts":"1970-01-01T00:00:02.000Z"}`, 2000, true},
		{"no ts", `{"topic":"telemetry/d/temp","value":1}`, 0, false},
		{"unterminated", `{"ts":"1970-01-01T00:00:01.000Z`, 0, false},
		{"not a time", `{"ts":"yesterday"}`, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := dataMillis([]byte(tt.data))
			if ok != tt.ok || got != tt.want {
				t.Fatalf("dataMillis = %d, %v; want %d, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestParseWSMessage(t *testing.T) {
	const data = `{"topic":"telemetry/d/temp","ts":"1970-01-01T00:00:01.000Z"}`
	tests := []struct {
		name string
		in   string
		want wsMessage
		err  bool
	}{
		{"event", `{"op":"event","id":"h-01","event":"telemetry","data":` + data + `}`,
			wsMessage{Op: wsOpEvent, ID: []byte("h-01"), Kind: kindTelemetry, TS: 1000, HasTS: true}, false},
		{"event other order", `{"id":"h-02","op":"event","data":` + data + `,"event":"telemetry"}`,
			wsMessage{Op: wsOpEvent, ID: []byte("h-02"), Kind: kindTelemetry, TS: 1000, HasTS: true}, false},
		{"escaped id", `{"op":"event","id":"h\"3","event":"presence","data":{"ts":"x"}}`,
			wsMessage{Op: wsOpEvent, ID: []byte(`h"3`), Kind: kindOther}, false},
		{"presence", `{"op":"event","id":"h-04","event":"presence","data":{"online":true}}`,
			wsMessage{Op: wsOpEvent, ID: []byte("h-04"), Kind: kindOther}, false},
		{"subscribed", `{"op":"subscribed","topics":["#"]}`, wsMessage{Op: wsOpSubscribed}, false},
		{"unsubscribed", `{"op":"unsubscribed","topics":["#"]}`, wsMessage{Op: wsOpOther}, false},
		{"reset", `{"op":"reset","oldest":"h-01"}`, wsMessage{Op: wsOpReset}, false},
		{"error", `{"op":"error","message":"bad filter"}`, wsMessage{Op: wsOpError, Message: "bad filter"}, false},
		{"not json", `{"op":`, wsMessage{}, true},
		{"fast prefix, broken rest", `{"op":"event","id":"h-05","event":"telemetry","data":`, wsMessage{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseWSMessage([]byte(tt.in))
			if (err != nil) != tt.err {
				t.Fatalf("err %v, want error %v", err, tt.err)
			}
			if err == nil && fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// sseResult is what a parser made of a stream.
type sseResult struct {
	events, resets, samples uint64
	lastID                  string
}

func parseSSE(chunks ...[]byte) sseResult {
	var h Histogram
	p := sseParser{hist: &h}
	var r sseResult
	for _, c := range chunks {
		e, rs := p.feed(c, 5000*1000)
		r.events += e
		r.resets += rs
	}
	r.samples, r.lastID = h.Count(), string(p.lastID)
	return r
}

func TestSSEParser(t *testing.T) {
	const tel = "id: a-1\nevent: telemetry\ndata: {\"ts\":\"1970-01-01T00:00:01.000Z\"}\n\n"
	tests := []struct {
		name   string
		stream string
		want   sseResult
	}{
		{"one telemetry", "retry: 2000\n\n" + tel, sseResult{1, 0, 1, "a-1"}},
		{"ping comment", ": ping\n\n" + tel + ": ping\n\n", sseResult{1, 0, 1, "a-1"}},
		{"crlf", strings.ReplaceAll(tel, "\n", "\r\n"), sseResult{1, 0, 1, "a-1"}},
		{"no space after colon", "id:a-2\nevent:telemetry\ndata:{\"ts\":\"1970-01-01T00:00:01.000Z\"}\n\n", sseResult{1, 0, 1, "a-2"}},
		{"presence: delivered, no latency", "id: a-3\nevent: presence\ndata: {\"ts\":\"1970-01-01T00:00:01.000Z\"}\n\n", sseResult{1, 0, 0, "a-3"}},
		{"telemetry without ts", "id: a-4\nevent: telemetry\ndata: {}\n\n", sseResult{1, 0, 0, "a-4"}},
		{"reset keeps resume point", tel + "event: reset\ndata: {\"oldest\":\"a-0\"}\n\n", sseResult{1, 1, 1, "a-1"}},
		{"event without id", "event: telemetry\ndata: {}\n\n", sseResult{}},
		{"id without data", "id: a-5\n\n", sseResult{}},
		{"id with NUL ignored", "id: a\x00\ndata: {}\n\n", sseResult{}},
		{"cut mid-event", tel + "id: a-6\nevent: telemetry\ndata: {", sseResult{1, 0, 1, "a-1"}},
		{"two events", tel + strings.Replace(tel, "a-1", "a-7", 1), sseResult{2, 0, 2, "a-7"}},
		{"unknown field", "foo: bar\n" + tel, sseResult{1, 0, 1, "a-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseSSE([]byte(tt.stream)); got != tt.want {
				t.Fatalf("whole: got %+v, want %+v", got, tt.want)
			}
			var bytewise [][]byte
			for i := range len(tt.stream) {
				bytewise = append(bytewise, []byte(tt.stream[i:i+1]))
			}
			if got := parseSSE(bytewise...); got != tt.want {
				t.Fatalf("byte by byte: got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSSEParserLatency(t *testing.T) {
	var h Histogram
	p := sseParser{hist: &h}
	ev := []byte("id: a-1\nevent: telemetry\ndata: {\"ts\":\"1970-01-01T00:00:01.000Z\"}\n\n")
	p.feed(ev, 1_250_000) // received at 1.25 s
	if h.Count() != 1 || h.Max() != 250*time.Millisecond {
		t.Fatalf("latency count %d max %v, want 1 of 250ms", h.Count(), h.Max())
	}
}

func TestSSEParserLongLine(t *testing.T) {
	long := "data: " + strings.Repeat("x", maxSSELine+10) + "\n"
	got := parseSSE([]byte("id: a-1\nevent: telemetry\n"), []byte(long[:maxSSELine/2]), []byte(long[maxSSELine/2:]), []byte("\n"))
	if want := (sseResult{1, 0, 0, "a-1"}); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	var p sseParser
	p.feed([]byte(long[:len(long)-1]), 0)
	if len(p.partial) != maxSSELine || !p.skip {
		t.Fatalf("kept %d bytes of a long line (skip %v), want %d", len(p.partial), p.skip, maxSSELine)
	}
	p.reset()
	if len(p.partial) != 0 || p.skip {
		t.Fatal("reset kept the partial line")
	}
}

// FuzzSSEParser: any stream, split anywhere, parses the same as whole and
// never dispatches more events than it has blank lines.
func FuzzSSEParser(f *testing.F) {
	f.Add([]byte("retry: 2000\n\nid: a-1\nevent: telemetry\ndata: {\"ts\":\"1970-01-01T00:00:01.000Z\"}\n\n"), uint16(7))
	f.Add([]byte("event: reset\r\ndata: {}\r\n\r\n: ping\n\n"), uint16(1))
	f.Add([]byte("id: x\x00\ndata\n\n"), uint16(3))
	f.Fuzz(func(t *testing.T, stream []byte, split uint16) {
		whole := parseSSE(stream)
		at := int(split) % (len(stream) + 1)
		parts := parseSSE(stream[:at], stream[at:])
		if whole != parts {
			t.Fatalf("whole %+v, split at %d %+v", whole, at, parts)
		}
		if blank := uint64(bytes.Count(stream, []byte("\n"))); whole.events+whole.resets > blank {
			t.Fatalf("%d events and %d resets from %d lines", whole.events, whole.resets, blank)
		}
	})
}

// FuzzParseMillis: the allocation-free path agrees with time.Parse.
func FuzzParseMillis(f *testing.F) {
	f.Add("2026-11-25T10:00:00.123Z")
	f.Add("2024-02-29T23:59:59.999Z")
	f.Add("0000-01-01T00:00:00.000Z")
	f.Add("2026-11-25T10:00:00Z")
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseMillis([]byte(s))
		ref, err := time.Parse(time.RFC3339Nano, s)
		if ok != (err == nil) || ok && got != ref.UnixMilli() {
			t.Fatalf("parseMillis(%q) = %d, %v; time.Parse: %v, %v", s, got, ok, ref.UnixMilli(), err)
		}
	})
}

// FuzzParseWSMessage: no input panics, and an event the fast path reads,
// whose data is one JSON value, decodes the same through encoding/json.
func FuzzParseWSMessage(f *testing.F) {
	f.Add([]byte(`{"op":"event","id":"h-01","event":"telemetry","data":{"ts":"1970-01-01T00:00:01.000Z"}}`))
	f.Add([]byte(`{"op":"subscribed","topics":["#"]}`))
	f.Add([]byte(`{"op":"reset","oldest":"h-01"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseWSMessage(b)
		if err != nil {
			return
		}
		if m.Op != wsOpEvent {
			return
		}
		if _, fast := parseFastEvent(b); !fast || !utf8.Valid(b) {
			return
		}
		_, data, _ := bytes.Cut(b, wsEventData)
		if !json.Valid(bytes.TrimSuffix(data, []byte("}"))) {
			return
		}
		slow, err := parseWSMessage(append([]byte(`{"op":"event","x":0,`), bytes.TrimPrefix(b, []byte(`{"op":"event",`))...))
		if err != nil {
			t.Fatalf("fast path read %q, decoder failed: %v", b, err)
		}
		if !bytes.Equal(slow.ID, m.ID) || slow.Kind != m.Kind || slow.HasTS != m.HasTS || slow.TS != m.TS {
			t.Fatalf("fast %+v, decoded %+v", m, slow)
		}
	})
}

// hubSSEChunk returns n telemetry events as the hub writes them.
func hubSSEChunk(n int) []byte {
	var b []byte
	for i := range n {
		b = fmt.Appendf(b, "id: 0123456789abcdef-%016x\nevent: telemetry\ndata: "+
			`{"topic":"telemetry/sim-%d/temp","device":"sim-%d","metric":"temp","value":21.53,"unit":"Cel","ts":"2026-11-25T10:00:00.123Z","device_seq":1764064800000000}`+
			"\n\n", i, i%1000, i%1000)
	}
	return b
}

func BenchmarkSSEParserFeed(b *testing.B) {
	chunk := hubSSEChunk(256)
	var h Histogram
	p := sseParser{hist: &h}
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		p.feed(chunk, 1764064800500000)
	}
	b.ReportMetric(float64(b.N*256)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkParseWSMessage(b *testing.B) {
	msg := []byte(`{"op":"event","id":"0123456789abcdef-0000000000000001","event":"telemetry","data":` +
		`{"topic":"telemetry/sim-1/temp","device":"sim-1","metric":"temp","value":21.53,"unit":"Cel","ts":"2026-11-25T10:00:00.123Z","device_seq":1764064800000000}}`)
	b.ReportAllocs()
	for b.Loop() {
		if m, err := parseWSMessage(msg); err != nil || !m.HasTS {
			b.Fatal(m, err)
		}
	}
}
