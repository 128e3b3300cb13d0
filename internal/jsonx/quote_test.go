package jsonx

import (
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
		{"exactly max", strings.Repeat("x", MaxQuoted), `"` + strings.Repeat("x", MaxQuoted) + `"`},
		{"long ASCII", strings.Repeat("x", 200), `"` + strings.Repeat("x", MaxQuoted) + `"...`},
		{"cut before a multi-byte rune", strings.Repeat("x", MaxQuoted-1) + "é" + "tail", `"` + strings.Repeat("x", MaxQuoted-1) + `"...`},
		{"invalid UTF-8", strings.Repeat("\xff", 100), `"` + strings.Repeat(`\xff`, MaxQuoted) + `"...`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Quote(tt.in); got != tt.want {
				t.Errorf("Quote = %s, want %s", got, tt.want)
			}
		})
	}
}
