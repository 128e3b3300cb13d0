package bridge

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
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
				var e *Error
				if !errors.As(err, &e) || e.Code != CodeBadRequest {
					t.Fatalf("%s %q: err = %#v, want *Error with %s", check.what, tt.in, err, CodeBadRequest)
				}
				if !strings.HasPrefix(e.Message, check.what+" ") {
					t.Errorf("message %q does not start with %q", e.Message, check.what)
				}
				if len(tt.in) <= maxQuoted && !strings.Contains(e.Message, quote(tt.in)) {
					t.Errorf("message %q does not name %q", e.Message, tt.in)
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

func TestTruncateKeepsUTF8(t *testing.T) {
	s := strings.Repeat("€", 100) // 3 bytes each
	for n := 1; n < 40; n++ {
		got := truncate(s, n)
		if len(got) > n || !utf8.ValidString(got) || len(got) < n-2 {
			t.Errorf("truncate(_, %d) = %d bytes, valid=%v", n, len(got), utf8.ValidString(got))
		}
	}
}
