package bridge

import (
	"testing"
	"time"
)

func TestSenMLAccepts(t *testing.T) {
	at := func(d time.Duration) time.Time { return fixedNow.Add(d) }
	tests := []struct {
		name    string
		payload string
		want    []Reading
	}{
		{"one record", `[{"n":"temp","u":"Cel","v":21.5}]`, []Reading{{Metric: "temp", Unit: "Cel", Value: num(21.5)}}},
		{"base name joins", `[{"bn":"pump-7.","n":"temp","v":1},{"n":"hum","v":2}]`, []Reading{
			{Metric: "pump-7.temp", Value: num(1)}, {Metric: "pump-7.hum", Value: num(2)},
		}},
		{"base name alone", `[{"bn":"temp","v":1}]`, []Reading{{Metric: "temp", Value: num(1)}}},
		{"base name after name in record", `[{"n":"temp","bn":"a.","v":1}]`, []Reading{{Metric: "a.temp", Value: num(1)}}},
		{"base name changes", `[{"bn":"a.","n":"x","v":1},{"bn":"b.","n":"x","v":2},{"n":"y","v":3}]`, []Reading{
			{Metric: "a.x", Value: num(1)}, {Metric: "b.x", Value: num(2)}, {Metric: "b.y", Value: num(3)},
		}},
		{"absolute bt", `[{"bt":1795600800,"n":"a","v":1}]`, []Reading{{Metric: "a", Value: num(1), Time: fixedNow}}},
		{"bt plus t", `[{"bt":1795600800,"n":"a","t":1.5,"v":1},{"n":"a","t":-60,"v":2}]`, []Reading{
			{Metric: "a", Value: num(1), Time: at(1500 * time.Millisecond)}, {Metric: "a", Value: num(2), Time: at(-time.Minute)},
		}},
		{"absolute t", `[{"n":"a","t":1795600800.123,"v":1}]`, []Reading{{Metric: "a", Value: num(1), Time: t1}}},
		{"relative t", `[{"n":"a","t":-5,"v":1}]`, []Reading{{Metric: "a", Value: num(1), Time: at(-5 * time.Second)}}},
		{"relative t zero", `[{"n":"a","t":0,"v":1}]`, []Reading{{Metric: "a", Value: num(1), Time: fixedNow}}},
		{"relative bt", `[{"bt":-10,"n":"a","v":1},{"n":"b","t":5,"v":2}]`, []Reading{
			{Metric: "a", Value: num(1), Time: at(-10 * time.Second)}, {Metric: "b", Value: num(2), Time: at(-5 * time.Second)},
		}},
		{"just below 2^28 is relative", `[{"n":"a","t":268435455,"v":1}]`, []Reading{{Metric: "a", Value: num(1), Time: at(268435455 * time.Second)}}},
		{"2^28 is absolute", `[{"n":"a","t":268435456,"v":1}]`, []Reading{{Metric: "a", Value: num(1), Time: time.Unix(268435456, 0)}}},
		{"no time", `[{"n":"a","v":1}]`, []Reading{{Metric: "a", Value: num(1)}}},
		{"base unit", `[{"bu":"Cel","n":"a","v":1},{"n":"b","u":"%RH","v":2},{"n":"c","v":3}]`, []Reading{
			{Metric: "a", Unit: "Cel", Value: num(1)}, {Metric: "b", Unit: "%RH", Value: num(2)}, {Metric: "c", Unit: "Cel", Value: num(3)},
		}},
		{"empty unit overrides base unit", `[{"bu":"Cel","n":"a","u":"","v":1}]`, []Reading{{Metric: "a", Value: num(1)}}},
		{"string value", `[{"n":"door","vs":"open"}]`, []Reading{{Metric: "door", Value: StringValue("open")}}},
		{"bool values", `[{"n":"a","vb":true},{"n":"b","vb":false}]`, []Reading{
			{Metric: "a", Value: BoolValue(true)}, {Metric: "b", Value: BoolValue(false)},
		}},
		{"base value", `[{"bv":100,"n":"a","v":1.5},{"n":"b","v":-1},{"n":"c","vs":"x"}]`, []Reading{
			{Metric: "a", Value: num(101.5)}, {Metric: "b", Value: num(99)}, {Metric: "c", Value: StringValue("x")},
		}},
		{"bver 10", `[{"bver":10,"n":"a","v":1}]`, []Reading{{Metric: "a", Value: num(1)}}},
		{"ignored fields", `[{"n":"a","v":1,"ut":60,"s":5,"bs":1,"l":[{"x":{}}],"foo":null}]`, []Reading{{Metric: "a", Value: num(1)}}},
		{"series of one metric", `[{"n":"a","t":-2,"v":1},{"n":"a","t":-1,"v":2}]`, []Reading{
			{Metric: "a", Value: num(1), Time: at(-2 * time.Second)}, {Metric: "a", Value: num(2), Time: at(-time.Second)},
		}},
		{"RFC 8428 example style", `[{"bn":"dev1.","bt":1.7956008e+09,"bu":"A","bver":5,"n":"voltage","u":"V","v":120.1},{"n":"current","t":-5,"v":1.2},{"n":"current","t":-4,"v":1.3}]`, []Reading{
			{Metric: "dev1.voltage", Unit: "V", Value: num(120.1), Time: fixedNow},
			{Metric: "dev1.current", Unit: "A", Value: num(1.2), Time: at(-5 * time.Second)},
			{Metric: "dev1.current", Unit: "A", Value: num(1.3), Time: at(-4 * time.Second)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTelemetry([]byte(tt.payload), nowFixed)
			if err != nil {
				t.Fatalf("parse %s: %v", tt.payload, err)
			}
			checkPayload(t, got, Payload{Readings: tt.want})
		})
	}
}

func TestSenMLReadsClockOncePerPack(t *testing.T) {
	calls := 0
	now := func() time.Time { calls++; return fixedNow }
	if _, err := parseTelemetry([]byte(`[{"n":"a","t":-1,"v":1},{"n":"b","t":-2,"v":1},{"n":"c","v":1}]`), now); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("clock read %d times, want 1", calls)
	}
}

func TestSenMLRejects(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    string
	}{
		{"empty pack", `[]`, "no readings"},
		{"record not object", `[1]`, "senml record 1: must be an object"},
		{"second record not object", `[{"n":"a","v":1},"x"]`, "senml record 2: must be an object"},
		{"missing value", `[{"n":"a"}]`, "senml record 1: no value (v, vs or vb)"},
		{"base fields only", `[{"bn":"a.","bt":1795600800},{"n":"b","v":1}]`, "senml record 1: no value"},
		{"two values", `[{"n":"a","v":1,"vs":"x"}]`, "senml record 1: more than one value"},
		{"data value", `[{"n":"a","vd":"aGk="}]`, "data values (vd) are not supported"},
		{"sum only", `[{"n":"a","s":5}]`, "sums (s) are not supported"},
		{"missing name", `[{"v":1}]`, `senml record 1: metric "": invalid name`},
		{"name rule after joining", `[{"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","v":1}]`, `metric "urn:dev:ow:10e2073a01080063:voltage": invalid name`},
		{"joined name too long", `[{"bn":"` + string(make64('a')) + `","n":"b","v":1}]`, "invalid name"},
		{"bad name in second record", `[{"n":"a","v":1},{"n":"b c","v":2}]`, `senml record 2: metric "b c": invalid name`},
		{"slash in name", `[{"bn":"a/","n":"b","v":1}]`, `metric "a/b": invalid name`},
		{"v string", `[{"n":"a","v":"12"}]`, `senml record 1: v: must be a number`},
		{"vs number", `[{"n":"a","vs":12}]`, `senml record 1: vs: must be a string`},
		{"vb string", `[{"n":"a","vb":"true"}]`, `senml record 1: vb: must be true or false`},
		{"n number", `[{"n":5,"v":1}]`, `n: must be a string`},
		{"bn null", `[{"bn":null,"n":"a","v":1}]`, `bn: must be a string`},
		{"u array", `[{"n":"a","u":["x"],"v":1}]`, `u: must be a string`},
		{"t string", `[{"n":"a","t":"now","v":1}]`, `t: must be a number`},
		{"bt bool", `[{"bt":true,"n":"a","v":1}]`, `bt: must be a number`},
		{"v null", `[{"n":"a","v":null}]`, `v: must be a number`},
		{"v nested", `[{"n":"a","v":{}}]`, `v: must be a number`},
		{"v too big", `[{"n":"a","v":1e999}]`, `v: number out of range`},
		{"v plus bv overflows", `[{"bv":1.7e308,"n":"a","v":1.7e308}]`, `v: number out of range`},
		{"time out of range", `[{"n":"a","t":1e300,"v":1}]`, `t: out of range`},
		{"relative time before 1970", `[{"n":"a","t":-1e10,"v":1}]`, `t: out of range`},
		{"very negative time", `[{"n":"a","t":-1e300,"v":1}]`, `t: out of range`},
		{"bver too new", `[{"bver":11,"n":"a","v":1}]`, `bver: version 11 not supported`},
		{"bver fraction", `[{"bver":1.5,"n":"a","v":1}]`, `bver: must be a positive integer`},
		{"bver zero", `[{"bver":0,"n":"a","v":1}]`, `bver: must be a positive integer`},
		{"must-understand field", `[{"n":"a","v":1,"foo_":1}]`, `senml record 1: field "foo_": must-understand field not supported`},
		{"duplicate field", `[{"n":"a","v":1,"v":2}]`, `senml record 1: duplicate field "v"`},
		{"duplicate base field", `[{"bn":"a","bn":"b","v":2}]`, `duplicate field "bn"`},
		{"invalid JSON in unknown field", `[{"n":"a","v":1,"x":[}]`, "invalid JSON"},
		{"unterminated pack", `[{"n":"a","v":1}`, "invalid JSON"},
		{"trailing comma", `[{"n":"a","v":1},]`, "invalid JSON"},
		{"too deep unknown field", `[{"n":"a","v":1,"x":` + nested(40) + `}]`, "nested too deeply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseTelemetry([]byte(tt.payload), nowFixed)
			checkRejected(t, err, tt.want)
		})
	}
}

func make64(c byte) []byte {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return b
}

// nested returns n nested arrays.
func nested(n int) string {
	s := ""
	for range n {
		s = "[" + s + "]"
	}
	return s
}
