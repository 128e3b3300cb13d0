package bridge

import (
	"errors"
	"strings"
	"testing"
)

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

func TestNameErrorsAreBadRequest(t *testing.T) {
	for _, err := range []error{validDeviceID("a/b"), validMetric("")} {
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeBadRequest || e.Message == "" {
			t.Errorf("err = %#v, want *Error with %s", err, CodeBadRequest)
		}
	}
	if validDeviceID("d1") != nil || validMetric("temp") != nil {
		t.Error("valid names refused")
	}
}
