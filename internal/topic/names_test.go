package topic

import (
	"errors"
	"strings"
	"testing"

	"github.com/telehub/telehub/internal/jsonx"
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
				if msg := err.Error(); len(tt.in) <= 80 && !strings.Contains(msg, jsonx.Quote(tt.in)) {
					t.Errorf("message %q does not name %q", msg, tt.in)
				}
			}
		})
	}
}
