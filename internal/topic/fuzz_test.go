package topic

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// filterSeeds are shared by the f.Add calls; the files under testdata/fuzz
// add more.
var filterSeeds = []string{"#", "+", "telemetry/+/temp", "telemetry/pump-7/#", "a/#/b", "a+", "", "/", "a//b"}

// checkRejection fails unless err matches ErrInvalid with a bounded message.
func checkRejection(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("error %v (%T) is not ErrInvalid", err, err)
	}
	if msg := err.Error(); msg == "" || len(msg) > 1024 {
		t.Fatalf("error message of %d bytes: %.200q", len(msg), msg)
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range filterSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := ParseFilter(s)
		if err != nil {
			checkRejection(t, err)
			return
		}
		if s == "" || len(s) > MaxFilterLen || !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			t.Fatalf("accepted %q", s)
		}
		if flt.String() != s || strings.Join(flt.Levels(), "/") != s {
			t.Fatalf("String %q Levels %q for %q", flt.String(), flt.Levels(), s)
		}
		// a topic made from the filter matches it
		levels := flt.Levels()
		if levels[len(levels)-1] == MultiLevel {
			levels = levels[:len(levels)-1]
		}
		for i, l := range levels {
			if l == SingleLevel {
				levels[i] = "x"
			}
		}
		if topic := strings.Join(levels, "/"); len(levels) > 0 && !flt.Match(topic) {
			t.Fatalf("%q does not match %q", s, topic)
		}
	})
}

func FuzzMatch(f *testing.F) {
	for _, s := range filterSeeds {
		f.Add(s, "telemetry/d1/temp")
		f.Add(s, "a")
	}
	f.Add("a/#", "a")
	f.Add("+/+", "/")
	f.Add("#", "$SYS/x")
	f.Fuzz(func(t *testing.T, filter, topic string) {
		flt, err := ParseFilter(filter)
		if err != nil {
			return
		}
		if got, want := flt.Match(topic), refMatch(filter, topic); got != want {
			t.Fatalf("%q.Match(%q) = %v, want %v", filter, topic, got, want)
		}
	})
}
