package bridge

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func TestAppendFloatMatchesEncodingJSON(t *testing.T) {
	tests := []float64{
		0, math.Copysign(0, -1), 1, -1, 21.5, 0.1, 1e-6, 1e-7, 9.99e-7, 1e20, 1e21, 1.5e21,
		123456789012345678, math.MaxFloat64, math.SmallestNonzeroFloat64, -2.5e-10, 1.0 / 3,
	}
	for _, f := range tests {
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendFloat(nil, f); string(got) != string(want) {
			t.Errorf("appendFloat(%v) = %s, want %s", f, got, want)
		}
	}
}

func TestFormatTime(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 11, 25, 10, 0, 0, 123_456_789, time.UTC), "2026-11-25T10:00:00.123Z"},
		{time.Date(2026, 11, 25, 11, 0, 0, 0, time.FixedZone("CET", 3600)), "2026-11-25T10:00:00.000Z"},
		{time.Date(2026, 1, 2, 3, 4, 5, 999_999_999, time.UTC), "2026-01-02T03:04:05.999Z"},
		{time.Unix(0, 0), "1970-01-01T00:00:00.000Z"},
		{time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), "9999-12-31T23:59:59.000Z"},
		{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), "10000-01-01T00:00:00.000Z"},
	}
	for _, tt := range tests {
		if got := FormatTime(tt.in); got != tt.want {
			t.Errorf("FormatTime(%v) = %s, want %s", tt.in, got, tt.want)
		}
		if got := string(AppendTime([]byte("x"), tt.in)); got != "x"+tt.want {
			t.Errorf("AppendTime = %s", got)
		}
	}
}

func TestErrorAnswer(t *testing.T) {
	got := ErrorAnswer(CodeBadRequest, `metric "a b": invalid name`, "devices/d1/telemetry")
	want := `{"code":"bad_request","message":"metric \"a b\": invalid name","topic":"devices/d1/telemetry"}`
	if string(got) != want {
		t.Errorf("ErrorAnswer = %s\nwant %s", got, want)
	}
}
