package topic

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestTopics(t *testing.T) {
	tests := []struct{ got, want string }{
		{Telemetry("d1", "temp"), "telemetry/d1/temp"},
		{Presence("d1"), "presence/d1"},
		{Errors("d1"), "errors/d1"},
		{Commands("d1"), "commands/d1"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestParseFilter(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		levels  []string
		wantErr string // substring of the message; empty when valid
	}{
		{"all", "#", []string{"#"}, ""},
		{"plus", "+", []string{"+"}, ""},
		{"exact", "telemetry/d1/temp", []string{"telemetry", "d1", "temp"}, ""},
		{"plus in middle", "telemetry/+/temp", []string{"telemetry", "+", "temp"}, ""},
		{"hash last", "telemetry/pump-7/#", []string{"telemetry", "pump-7", "#"}, ""},
		{"plus and hash", "+/+/#", []string{"+", "+", "#"}, ""},
		{"empty levels", "a//b/", []string{"a", "", "b", ""}, ""},
		{"leading slash", "/a", []string{"", "a"}, ""},
		{"max length", strings.Repeat("a", MaxFilterLen), []string{strings.Repeat("a", MaxFilterLen)}, ""},
		{"unicode", "telemetry/défi", []string{"telemetry", "défi"}, ""},
		{"empty", "", nil, "empty"},
		{"too long", strings.Repeat("a", MaxFilterLen+1), nil, "longer than 256 bytes"},
		{"hash not last", "a/#/b", nil, "'#' must be the last level"},
		{"hash first of two", "#/a", nil, "'#' must be the last level"},
		{"hash in level", "a/b#", nil, "whole level"},
		{"plus in level", "a/b+/c", nil, "whole level"},
		{"plus then hash", "a/+#", nil, "whole level"},
		{"hash hash", "##", nil, "whole level"},
		{"invalid UTF-8", "a/\xff", nil, "invalid UTF-8"},
		{"NUL", "a/\x00", nil, "NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFilter(tt.in)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseFilter(%q) err = %v, want ErrInvalid containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFilter(%q): %v", tt.in, err)
			}
			if f.String() != tt.in {
				t.Errorf("String = %q", f.String())
			}
			if !slices.Equal(f.Levels(), tt.levels) {
				t.Errorf("Levels = %q, want %q", f.Levels(), tt.levels)
			}
		})
	}
}

func TestFilterLevelsIsACopy(t *testing.T) {
	f, err := ParseFilter("a/+/c")
	if err != nil {
		t.Fatal(err)
	}
	f.Levels()[0] = "x"
	if !f.Match("a/b/c") {
		t.Error("changing the result of Levels changed the filter")
	}
}

func TestFilterIsWildcard(t *testing.T) {
	for in, want := range map[string]bool{"a/b": false, "a/+": true, "#": true} {
		f, err := ParseFilter(in)
		if err != nil {
			t.Fatal(err)
		}
		if f.IsWildcard() != want {
			t.Errorf("%q IsWildcard = %v", in, !want)
		}
	}
}

func TestFilterMatch(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"#", "telemetry/d1/temp", true},
		{"#", "a", true},
		{"telemetry/+/temp", "telemetry/d1/temp", true},
		{"telemetry/+/temp", "telemetry/d1/hum", false},
		{"telemetry/+/temp", "telemetry/d1/temp/x", false},
		{"telemetry/+/temp", "telemetry/temp", false},
		{"telemetry/pump-7/#", "telemetry/pump-7/temp", true},
		{"telemetry/pump-7/#", "telemetry/pump-7", true},
		{"telemetry/pump-7/#", "telemetry/pump-70/temp", false},
		{"telemetry/pump-7/#", "telemetry/pump-7/a/b/c", true},
		{"presence/#", "presence/d1", true},
		{"presence/#", "presences/d1", false},
		{"presence/#", "telemetry/d1/temp", false},
		{"a/#", "a", true},
		{"a/#", "ab", false},
		{"a/b", "a/b", true},
		{"a/b", "a/b/", false},
		{"a/b", "a", false},
		{"a/b", "a/bc", false},
		{"+", "a", true},
		{"+", "a/b", false},
		{"+", "", true},
		{"+/+", "a/", true},
		{"+/+", "/a", true},
		{"+/#", "a", true},
		{"a/+/#", "a/b", true},
		{"a/+/#", "a", false},
		{"a/+/c", "a/b/c", true},
		{"+/+/+", "telemetry/d1/temp", true},
		{"+/+/+", "presence/d1", false},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"errors/+", "errors/d1", true},
	}
	for _, tt := range tests {
		f, err := ParseFilter(tt.filter)
		if err != nil {
			t.Fatalf("ParseFilter(%q): %v", tt.filter, err)
		}
		if got := f.Match(tt.topic); got != tt.want {
			t.Errorf("%q.Match(%q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
		if got := refMatch(tt.filter, tt.topic); got != tt.want {
			t.Errorf("refMatch(%q, %q) = %v, want %v (test oracle is wrong)", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func TestZeroFilterMatchesNothing(t *testing.T) {
	var f Filter
	if f.Match("") || f.Match("a") {
		t.Error("zero Filter matched")
	}
}

// refMatch is a slow, obviously correct MQTT matcher used as a test oracle.
func refMatch(filter, topic string) bool {
	fl := strings.Split(filter, "/")
	tl := strings.Split(topic, "/")
	if strings.HasPrefix(topic, "$") && (fl[0] == "+" || fl[0] == "#") {
		return false
	}
	for i, l := range fl {
		if l == "#" {
			return true
		}
		if i >= len(tl) || (l != "+" && l != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}
