package bridge

import (
	"strings"
	"testing"
)

func TestParsePlain(t *testing.T) {
	tests := []struct {
		payload string
		want    Value
	}{
		{"21.5", num(21.5)},
		{"  21.5\n", num(21.5)},
		{"-3", num(-3)},
		{"+4", num(4)},
		{".5", num(0.5)},
		{"5.", num(5)},
		{"1e3", num(1000)},
		{"1E-2", num(0.01)},
		{"007", num(7)},
		{"true", BoolValue(true)},
		{" false\r\n", BoolValue(false)},
		{"True", StringValue("True")},
		{"open", StringValue("open")},
		{"NaN", StringValue("NaN")},
		{"Inf", StringValue("Inf")},
		{"-Infinity", StringValue("-Infinity")},
		{"0x10", StringValue("0x10")},
		{"1_000", StringValue("1_000")},
		{"1e999", StringValue("1e999")},
		{"1e", StringValue("1e")},
		{".", StringValue(".")},
		{"-", StringValue("-")},
		{"12 apples", StringValue("12 apples")},
		{"héllo wörld", StringValue("héllo wörld")},
		{`{"a":1}`, StringValue(`{"a":1}`)},
	}
	for _, tt := range tests {
		t.Run(tt.payload, func(t *testing.T) {
			p, err := ParsePlain("m", []byte(tt.payload))
			if err != nil {
				t.Fatalf("ParsePlain(%q): %v", tt.payload, err)
			}
			checkPayload(t, p, Payload{Readings: []Reading{{Metric: "m", Value: tt.want}}})
		})
	}
}

func TestParsePlainRejects(t *testing.T) {
	tests := []struct {
		name, metric, payload, want string
	}{
		{"empty", "m", "", `value of "m": empty payload`},
		{"blank", "m", " \t\n", `value of "m": empty payload`},
		{"invalid UTF-8", "m", "ab\xffc", `value of "m": invalid UTF-8`},
		{"bad metric", "a b", "1", `metric "a b": invalid name`},
		{"empty metric", "", "1", `metric "": invalid name`},
		{"long metric", strings.Repeat("m", 65), "1", "invalid name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePlain(tt.metric, []byte(tt.payload))
			checkRejected(t, err, tt.want)
		})
	}
}
