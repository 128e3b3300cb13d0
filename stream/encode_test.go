package stream

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/storage"
)

func TestEncodeLengths(t *testing.T) {
	ids := storage.NewIDCodec("a1b2c3")
	tests := []struct {
		name string
		data string
	}{
		{"empty", ""},
		{"small", `{"v":1}`},
		{"125", `"` + strings.Repeat("x", 125-len(`{"op":"event","id":"a1b2c3-0000000000000007","event":"telemetry","data":""}`)) + `"`},
		{"126", `"` + strings.Repeat("x", 126-len(`{"op":"event","id":"a1b2c3-0000000000000007","event":"telemetry","data":""}`)) + `"`},
		{"64k", `"` + strings.Repeat("x", 65535-len(`{"op":"event","id":"a1b2c3-0000000000000007","event":"telemetry","data":""}`)) + `"`},
		{"64k+1", `"` + strings.Repeat("x", 65536-len(`{"op":"event","id":"a1b2c3-0000000000000007","event":"telemetry","data":""}`)) + `"`},
		{"line breaks", "{\n\"v\":\r\n1}\r"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &storage.Record{ID: 7, Kind: bridge.KindTelemetry, Topic: "t", Data: []byte(tt.data)}
			sse := appendSSEEvent(nil, ids, rec)
			if len(sse) != sseEventLen(ids, rec) {
				t.Errorf("SSE length %d, computed %d", len(sse), sseEventLen(ids, rec))
			}
			ws := appendWSEvent(nil, ids, rec)
			if len(ws) != wsEventLen(ids, rec) {
				t.Errorf("WS length %d, computed %d", len(ws), wsEventLen(ids, rec))
			}
			payload := parseServerFrame(t, ws)
			var m wsMsg
			if err := json.Unmarshal(payload, &m); err != nil {
				t.Fatalf("payload %.100q: %v", payload, err)
			}
			if m.Op != "event" || m.ID != "a1b2c3-0000000000000007" || m.Event != "telemetry" {
				t.Errorf("message %+v", m)
			}
		})
	}
}

// parseServerFrame checks an unmasked final text frame and returns its payload.
func parseServerFrame(t *testing.T, b []byte) []byte {
	t.Helper()
	if b[0] != 0x81 || b[1]&0x80 != 0 {
		t.Fatalf("header % x", b[:2])
	}
	n, off := uint64(b[1]), 2
	switch n {
	case 126:
		n, off = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		n, off = binary.BigEndian.Uint64(b[2:]), 10
	}
	if uint64(len(b)-off) != n {
		t.Fatalf("frame says %d payload bytes, has %d", n, len(b)-off)
	}
	return b[off:]
}

func TestSSEDataLines(t *testing.T) {
	ids := storage.NewIDCodec("h")
	rec := &storage.Record{ID: 1, Kind: bridge.KindPresence, Data: []byte("a\nb\rc")}
	want := "id: h-0000000000000001\nevent: presence\ndata: a\ndata: b\ndata: c\n\n"
	if got := appendSSEEvent(nil, ids, rec); string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := appendSSEReset(nil, `h-"1`, time.Time{}); string(got) != "event: reset\ndata: {\"oldest\":\"h-\\\"1\"}\n\n" {
		t.Errorf("reset %q", got)
	}
	since := time.Date(2026, 11, 25, 10, 0, 0, 123_456_789, time.UTC)
	want = "event: reset\ndata: {\"oldest\":\"h-1\",\"since\":\"2026-11-25T10:00:00.123Z\"}\n\n"
	if got := appendSSEReset(nil, "h-1", since); string(got) != want {
		t.Errorf("reset with since %q, want %q", got, want)
	}
}

func TestEncoderChunks(t *testing.T) {
	e := encoder{ids: storage.NewIDCodec("h")}
	var frames []*frame
	var want [][]byte
	for i := range 3000 {
		rec := &storage.Record{ID: uint64(i + 1), Kind: bridge.KindTelemetry, Data: bytes.Repeat([]byte("x"), i%9000)}
		var p pending
		for _, f := range []format{formatSSE, formatWS} {
			fr := e.frame(&p, f, rec)
			if e.frame(&p, f, rec) != fr {
				t.Fatal("a record was encoded twice")
			}
			frames = append(frames, fr)
			want = append(want, f.appendEvent(nil, e.ids, rec))
		}
	}
	for i, fr := range frames { // later frames never overwrote earlier ones
		if !bytes.Equal(fr.b, want[i]) {
			t.Fatalf("frame %d changed", i)
		}
	}
}
