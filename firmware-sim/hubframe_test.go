package firmwaresim

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestParseHubFrame(t *testing.T) {
	tests := []struct {
		in   string
		want hubFrame
		err  bool
	}{
		{`{"type":"ack","seq":42}`, hubFrame{Kind: frameAck, Seq: 42, HasSeq: true}, false},
		{`{"type":"ack","seq":18446744073709551615}`, hubFrame{Kind: frameAck, Seq: 1<<64 - 1, HasSeq: true}, false},
		{`{"seq":42,"type":"ack"}`, hubFrame{Kind: frameAck, Seq: 42, HasSeq: true}, false},
		{`{"type":"ack"}`, hubFrame{Kind: frameAck}, false},
		{`{"type":"ack","seq":null}`, hubFrame{Kind: frameAck}, false},
		{`{"type":"error","seq":7,"code":"bad_request","message":"bad name"}`,
			hubFrame{Kind: frameError, Seq: 7, HasSeq: true, Code: "bad_request", Message: "bad name"}, false},
		{`{"type":"error","code":"bad_request","message":"bad JSON"}`,
			hubFrame{Kind: frameError, Code: "bad_request", Message: "bad JSON"}, false},
		{`{"type":"hello"}`, hubFrame{Kind: frameOther}, false},
		{`{"type":"ack","seq":18446744073709551616}`, hubFrame{}, true},
		{`{"type":"ack","seq":007}`, hubFrame{}, true},
		{`{"type":"ack","seq":-1}`, hubFrame{}, true},
		{`{"type":"ack","seq":"1"}`, hubFrame{}, true},
		{`{"type":"ack","seq":1.5}`, hubFrame{}, true},
		{`not json`, hubFrame{}, true},
		{``, hubFrame{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseHubFrame([]byte(tt.in))
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if err != nil && !errors.Is(err, ErrBadHubFrame) {
				t.Fatalf("err %v does not wrap ErrBadHubFrame", err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// FuzzParseHubFrame checks that parsing never panics and that the fast ack
// path agrees with encoding/json.
func FuzzParseHubFrame(f *testing.F) {
	for _, s := range []string{`{"type":"ack","seq":42}`, `{"type":"error","seq":1,"code":"x","message":"y"}`,
		`{"type":"ack","seq":0}`, `{"type":"ack","seq":99999999999999999999}`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseHubFrame(b)
		if err != nil {
			return
		}
		fast, ok := parseFastAck(b)
		if !ok {
			return
		}
		var ref struct {
			Type string  `json:"type"`
			Seq  *uint64 `json:"seq"`
		}
		if json.Unmarshal(b, &ref) != nil || ref.Type != "ack" || ref.Seq == nil || *ref.Seq != fast.Seq || got != fast {
			t.Fatalf("fast path read %q as seq %d; encoding/json disagrees", b, fast.Seq)
		}
	})
}

func BenchmarkParseAck(b *testing.B) {
	frame := []byte(`{"type":"ack","seq":1764064800000123}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseHubFrame(frame); err != nil {
			b.Fatal(err)
		}
	}
}
