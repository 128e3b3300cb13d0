package topic

import (
	"errors"
	"strings"
	"testing"
)

func TestValidNames(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"single letter", "a", true},
		{"single digit", "7", true},
		{"typical", "pump-7", true},
		{"all punctuation", "a.b_c-d", true},
		{"64 chars", strings.Repeat("a", 64), true},
		{"mixed case", "Temp.Sensor_01", true},
		{"empty", "", false},
		{"65 chars", strings.Repeat("a", 65), false},
		{"slash", "a/b", false},
		{"plus", "a+b", false},
		{"hash", "a#", false},
		{"space", "a b", false},
		{"leading dot", ".a", false},
		{"leading dash", "-a", false},
		{"leading underscore", "_a", false},
		{"colon", "urn:dev:1", false},
		{"invalid UTF-8", "a\xff", false},
		{"non-ASCII letter", "tempé", false},
		{"NUL", "a\x00", false},
		{"dollar", "$sys", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, check := range []struct {
				what string
				fn   func(string) error
			}{{"device id", ValidDeviceID}, {"metric", ValidMetric}} {
				err := check.fn(tt.in)
				if (err == nil) != tt.ok {
					t.Fatalf("%s %q: err = %v, want ok=%v", check.what, tt.in, err, tt.ok)
				}
				if err == nil {
					continue
				}
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("%s %q: err = %#v, want ErrInvalid", check.what, tt.in, err)
				}
				if msg := err.Error(); !strings.HasPrefix(msg, check.what+" ") {
					t.Errorf("message %q does not start with %q", msg, check.what)
				}
				if msg := err.Error(); len(tt.in) <= maxQuoted && !strings.Contains(msg, quote(tt.in)) {
					t.Errorf("message %q does not name %q", msg, tt.in)
				}
			}
		})
	}
}

func TestQuoteTruncates(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"short", "abc", `"abc"`},
		{"exactly max", strings.Repeat("x", maxQuoted), `"` + strings.Repeat("x", maxQuoted) + `"`},
		{"long ASCII", strings.Repeat("x", 200), `"` + strings.Repeat("x", maxQuoted) + `"...`},
		{"cut before a multi-byte rune", strings.Repeat("x", maxQuoted-1) + "é" + "tail", `"` + strings.Repeat("x", maxQuoted-1) + `"...`},
		{"invalid UTF-8", strings.Repeat("\xff", 100), `"` + strings.Repeat(`\xff`, maxQuoted) + `"...`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := quote(tt.in); got != tt.want {
				t.Errorf("quote = %s, want %s", got, tt.want)
			}
		})
	}
}
