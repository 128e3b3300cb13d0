package bridge

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// fixedNow is the clock of the parser tests.
var fixedNow = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func nowFixed() time.Time { return fixedNow }

// ms1 is 2026-11-25T10:00:00.123Z in unix milliseconds.
const ms1 = 1795600800123

var t1 = time.UnixMilli(ms1).UTC()

func num(f float64) Value { return NumberValue(f) }

// checkPayload compares payloads, times with Equal.
func checkPayload(t *testing.T, got, want Payload) {
	t.Helper()
	if got.Seq != want.Seq || got.HasSeq != want.HasSeq {
		t.Errorf("seq = %d/%v, want %d/%v", got.Seq, got.HasSeq, want.Seq, want.HasSeq)
	}
	if len(got.Readings) != len(want.Readings) {
		t.Fatalf("got %d readings %+v, want %d %+v", len(got.Readings), got.Readings, len(want.Readings), want.Readings)
	}
	for i, g := range got.Readings {
		w := want.Readings[i]
		if g.Metric != w.Metric || g.Value != w.Value || g.Unit != w.Unit || !g.Time.Equal(w.Time) {
			t.Errorf("reading %d = %+v, want %+v", i, g, w)
		}
	}
}

// checkRejected checks err is an *Error with CodeBadRequest whose message
// contains want.
func checkRejected(t *testing.T, err error, want string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *Error containing %q", err, err, want)
	}
	if e.Code != CodeBadRequest || !strings.Contains(e.Message, want) {
		t.Errorf("err = %s %q, want %s containing %q", e.Code, e.Message, CodeBadRequest, want)
	}
}

func TestParseTelemetryAccepts(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    Payload
	}{
		{"flat", `{"temp":21.5,"hum":40,"door":"open","alarm":false}`, Payload{Readings: []Reading{
			{Metric: "temp", Value: num(21.5)}, {Metric: "hum", Value: num(40)},
			{Metric: "door", Value: StringValue("open")}, {Metric: "alarm", Value: BoolValue(false)},
		}}},
		{"flat with ts ms and seq", `{"ts":1795600800123,"seq":42,"temp":1}`, Payload{Seq: 42, HasSeq: true, Readings: []Reading{
			{Metric: "temp", Value: num(1), Time: t1},
		}}},
		{"ts and seq after metrics", `{"temp":1,"seq":0,"ts":"2026-11-25T10:00:00.123Z"}`, Payload{Seq: 0, HasSeq: true, Readings: []Reading{
			{Metric: "temp", Value: num(1), Time: t1},
		}}},
		{"ts RFC 3339 with offset", `{"ts":"2026-11-25T11:00:00.123+01:00","a":true}`, Payload{Readings: []Reading{
			{Metric: "a", Value: BoolValue(true), Time: t1},
		}}},
		{"ts RFC 3339 without fraction", `{"ts":"2026-11-25T10:00:00Z","a":true}`, Payload{Readings: []Reading{
			{Metric: "a", Value: BoolValue(true), Time: fixedNow},
		}}},
		{"ts fractional ms", `{"ts":1795600800123.5,"a":1}`, Payload{Readings: []Reading{
			{Metric: "a", Value: num(1), Time: t1.Add(500 * time.Microsecond)},
		}}},
		{"ts zero", `{"ts":0,"a":1}`, Payload{Readings: []Reading{{Metric: "a", Value: num(1), Time: time.Unix(0, 0)}}}},
		{"seq max", `{"seq":18446744073709551615,"a":1}`, Payload{Seq: 1<<64 - 1, HasSeq: true, Readings: []Reading{{Metric: "a", Value: num(1)}}}},
		{"wrapped", `{"ts":1795600800123,"seq":7,"values":{"temp":21.5,"door":"open"}}`, Payload{Seq: 7, HasSeq: true, Readings: []Reading{
			{Metric: "temp", Value: num(21.5), Time: t1}, {Metric: "door", Value: StringValue("open"), Time: t1},
		}}},
		{"wrapped values first", `{"values":{"ts":5},"seq":1}`, Payload{Seq: 1, HasSeq: true, Readings: []Reading{{Metric: "ts", Value: num(5)}}}},
		{"wrapped without ts", `{"values":{"a":-0.5}}`, Payload{Readings: []Reading{{Metric: "a", Value: num(-0.5)}}}},
		{"numbers", `{"a":0,"b":-0,"c":1e3,"d":1.5E-3,"e":123456789012345678,"f":0.1,"g":1e308}`, Payload{Readings: []Reading{
			{Metric: "a", Value: num(0)}, {Metric: "b", Value: num(0)}, {Metric: "c", Value: num(1000)},
			{Metric: "d", Value: num(0.0015)}, {Metric: "e", Value: num(123456789012345678)},
			{Metric: "f", Value: num(0.1)}, {Metric: "g", Value: num(1e308)},
		}}},
		{"string escapes", `{"s":"a\"b\\c\/d\n\u00e9\ud83d\ude00\ud800x"}`, Payload{Readings: []Reading{
			{Metric: "s", Value: StringValue("a\"b\\c/d\né😀\uFFFDx")},
		}}},
		{"empty string", `{"s":""}`, Payload{Readings: []Reading{{Metric: "s", Value: StringValue("")}}}},
		{"escaped key", `{"te\u006dp":1}`, Payload{Readings: []Reading{{Metric: "temp", Value: num(1)}}}},
		{"white space", " \t\r\n{ \"a\" : 1 , \"b\" : true } \n", Payload{Readings: []Reading{
			{Metric: "a", Value: num(1)}, {Metric: "b", Value: BoolValue(true)},
		}}},
		{"64-char metric", `{"` + strings.Repeat("m", 64) + `":1}`, Payload{Readings: []Reading{{Metric: strings.Repeat("m", 64), Value: num(1)}}}},
		{"senml", `[{"n":"temp","u":"Cel","v":21.5}]`, Payload{Readings: []Reading{{Metric: "temp", Value: num(21.5), Unit: "Cel"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTelemetry([]byte(tt.payload), nowFixed)
			if err != nil {
				t.Fatalf("parse %s: %v", tt.payload, err)
			}
			checkPayload(t, got, tt.want)
		})
	}
}

func TestParseTelemetryManyMetrics(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	for i := range 40 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"m` + strings.Repeat("x", i) + `":1`)
	}
	b.WriteString("}")
	p, err := ParseTelemetry([]byte(b.String()))
	if err != nil || len(p.Readings) != 40 {
		t.Fatalf("got %d readings, err %v", len(p.Readings), err)
	}
	dup := strings.Replace(b.String(), "}", `,"mxxx":2}`, 1)
	_, err = ParseTelemetry([]byte(dup))
	checkRejected(t, err, `metric "mxxx": appears more than once`)
}

func TestParseTelemetryRejects(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    string
	}{
		{"empty", ``, "empty payload"},
		{"blank", "  \n", "empty payload"},
		{"string", `"x"`, "JSON object or a SenML array"},
		{"number", `42`, "JSON object or a SenML array"},
		{"empty object", `{}`, "no readings"},
		{"only ts and seq", `{"ts":1,"seq":1}`, "no readings"},
		{"empty values", `{"values":{}}`, "no readings"},
		{"bad metric name", `{"a b":1}`, `metric "a b": invalid name`},
		{"slash in metric", `{"a/b":1}`, `metric "a/b": invalid name`},
		{"empty metric", `{"":1}`, `metric "": invalid name`},
		{"65-char metric", `{"` + strings.Repeat("m", 65) + `":1}`, "invalid name"},
		{"bad name among good", `{"a":1,"b#":2,"c":3}`, `metric "b#"`},
		{"bad name in values", `{"values":{"+":1}}`, `metric "+": invalid name`},
		{"invalid UTF-8 key", "{\"a\xff\":1}", "invalid UTF-8"},
		{"nested object", `{"x":{"y":1}}`, `value of "x": nested objects are not allowed`},
		{"array", `{"x":[1,2]}`, `value of "x": arrays are not allowed`},
		{"null", `{"x":null}`, `value of "x": null is not allowed`},
		{"nested in values", `{"values":{"x":{}}}`, `value of "x": nested objects are not allowed`},
		{"number too big", `{"x":1e400}`, `value of "x": number out of range`},
		{"duplicate metric", `{"a":1,"a":2}`, `metric "a": appears more than once`},
		{"duplicate ts", `{"ts":1,"ts":2,"a":1}`, `duplicate key "ts"`},
		{"duplicate seq", `{"seq":1,"seq":2,"a":1}`, `duplicate key "seq"`},
		{"duplicate values", `{"values":{"a":1},"values":{"b":1}}`, `duplicate key "values"`},
		{"values not object", `{"values":5}`, `values: must be an object`},
		{"values array", `{"values":[{"a":1}]}`, `values: must be an object`},
		{"metric next to values", `{"values":{"a":1},"b":2}`, `metric "b": metrics go inside "values"`},
		{"metric before values", `{"b":2,"values":{"a":1}}`, `metric "b": metrics go inside "values"`},
		{"ts bool", `{"ts":true,"a":1}`, "ts: must be unix milliseconds or an RFC 3339 string"},
		{"ts null", `{"ts":null,"a":1}`, "ts: must be unix milliseconds or an RFC 3339 string"},
		{"ts object", `{"ts":{},"a":1}`, "ts: must be unix milliseconds or an RFC 3339 string"},
		{"ts bad string", `{"ts":"yesterday","a":1}`, "ts: must be unix milliseconds or an RFC 3339 string"},
		{"ts date only", `{"ts":"2026-11-25","a":1}`, "ts: must be unix milliseconds or an RFC 3339 string"},
		{"ts negative", `{"ts":-1,"a":1}`, "ts: out of range"},
		{"ts too big", `{"ts":1e20,"a":1}`, "ts: out of range"},
		{"ts before 1970", `{"ts":"1960-01-01T00:00:00Z","a":1}`, "ts: out of range"},
		{"seq fraction", `{"seq":1.5,"a":1}`, "seq: must be an integer"},
		{"seq one point zero", `{"seq":1.0,"a":1}`, "seq: must be an integer"},
		{"seq exponent", `{"seq":1e3,"a":1}`, "seq: must be an integer"},
		{"seq negative", `{"seq":-1,"a":1}`, "seq: must be an integer"},
		{"seq string", `{"seq":"42","a":1}`, "seq: must be an integer"},
		{"seq bool", `{"seq":true,"a":1}`, "seq: must be an integer"},
		{"seq overflow", `{"seq":18446744073709551616,"a":1}`, "seq: must be an integer"},
		{"invalid JSON", `{"a":1`, "invalid JSON"},
		{"trailing comma", `{"a":1,}`, "invalid JSON"},
		{"missing colon", `{"a" 1}`, "invalid JSON"},
		{"single quotes", `{'a':1}`, "invalid JSON"},
		{"trailing data", `{"a":1} x`, "unexpected data after the top-level value"},
		{"two objects", `{"a":1}{"b":2}`, "unexpected data"},
		{"bare word", `{"a":tru}`, "invalid JSON"},
		{"leading zero", `{"a":01}`, "invalid JSON"},
		{"plus number", `{"a":+1}`, "invalid JSON"},
		{"dot number", `{"a":.5}`, "invalid JSON"},
		{"number no frac digits", `{"a":1.}`, "invalid JSON"},
		{"number no exp digits", `{"a":1e}`, "invalid JSON"},
		{"NaN", `{"a":NaN}`, "invalid JSON"},
		{"control char in string", "{\"a\":\"x\ny\"}", "control character"},
		{"invalid UTF-8 value", "{\"a\":\"\xff\"}", "invalid UTF-8"},
		{"bad escape", `{"a":"\x"}`, "invalid escape"},
		{"bad unicode escape", `{"a":"\u12"}`, `invalid \u escape`},
		{"unterminated string", `{"a":"abc`, "unterminated string"},
		{"unterminated escape", `{"a":"abc\`, "unterminated string"},
		{"invalid UTF-8 in escaped string", "{\"a\":\"\\n\xff\"}", "invalid UTF-8"},
		{"control char in escaped string", "{\"a\":\"\\n\x01\"}", "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parseTelemetry([]byte(tt.payload), nowFixed)
			checkRejected(t, err, tt.want)
			if len(p.Readings) != 0 || p.HasSeq {
				t.Errorf("rejected payload returned %+v", p)
			}
		})
	}
}
