package auth

import (
	"strings"
	"testing"

	"github.com/telehub/telehub/internal/topic"
)

func mustFilter(t testing.TB, s string) topic.Filter {
	t.Helper()
	f, err := topic.ParseFilter(s)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCovers(t *testing.T) {
	tests := []struct {
		scope, filter string
		want          bool
	}{
		{"#", "#", true},
		{"#", "telemetry/+/temp", true},
		{"#", "a", true},
		{"telemetry/#", "telemetry/+/temp", true},
		{"telemetry/#", "telemetry/#", true},
		{"telemetry/#", "telemetry", true},
		{"telemetry/#", "#", false},
		{"telemetry/#", "presence/#", false},
		{"telemetry/#", "+/d1/temp", false},
		{"telemetry/+/+", "telemetry/+/temp", true},
		{"telemetry/+/+", "telemetry/d1/temp", true},
		{"telemetry/+/+", "telemetry/d1/#", false},
		{"telemetry/+/+", "telemetry/d1", false},
		{"telemetry/+/+", "telemetry/d1/temp/x", false},
		{"telemetry/+/temp", "telemetry/+/temp", true},
		{"telemetry/+/temp", "telemetry/d1/temp", true},
		{"telemetry/+/temp", "telemetry/+/+", false},
		{"telemetry/+/temp", "telemetry/d1/hum", false},
		{"telemetry/pump-7/#", "telemetry/+/temp", false},
		{"telemetry/pump-7/#", "telemetry/pump-7/temp", true},
		{"telemetry/pump-7/#", "telemetry/pump-7", true},
		{"telemetry/d1/temp", "telemetry/d1/temp", true},
		{"telemetry/d1/temp", "telemetry/d1/+", false},
		{"telemetry/d1/temp", "telemetry/d1/temp/#", false},
		{"a/+/#", "a/#", false}, // a/# matches "a"; a/+/# does not
		{"a/+/#", "a/+", true},  // '#' matches zero levels
		{"a/+/#", "a/b/c/d", true},
		{"a/+", "a/#", false},
		{"a", "a/#", false},
		{"a/#", "a/", true},
		{"a", "a/", false},
		{"+/+", "/", true},
		{"+", "/", false},
		{"a//b", "a//b", true},
		{"a/+/b", "a//b", true},
		{"+", "$SYS", false}, // wildcard first levels never match '$' topics
		{"#", "$SYS/#", false},
		{"$SYS/#", "$SYS/x", true},
		{"#", "+/x", true}, // '+' first level matches no '$' topic either
		{"+/#", "$SYS", false},
		{"+/#", "#", true}, // every topic has a level: both match everything
		{"+/+/#", "#", false},
	}
	for _, tt := range tests {
		t.Run(tt.scope+" ⊇ "+tt.filter, func(t *testing.T) {
			if got := Covers(mustFilter(t, tt.scope), mustFilter(t, tt.filter)); got != tt.want {
				t.Fatalf("Covers(%q, %q) = %v, want %v", tt.scope, tt.filter, got, tt.want)
			}
		})
	}
}

func TestCoversZeroFilter(t *testing.T) {
	f := mustFilter(t, "#")
	if Covers(topic.Filter{}, f) || Covers(f, topic.Filter{}) {
		t.Fatal("a zero Filter covers or is covered")
	}
}

// TestCoversExhaustive compares Covers with the definition, "every topic
// the filter matches, the scope matches", over every filter of up to three
// levels from {a, $a, "", +, #} and every topic of up to five levels from
// {a, $a, "", z}: z stands for any name the filters do not spell out, and
// five levels are enough to tell a '#' from any finite filter of three.
func TestCoversExhaustive(t *testing.T) {
	filters := combos([]string{"a", "$a", "", "+", "#"}, 3)
	topics := combos([]string{"a", "$a", "", "z"}, 5)
	var parsed []topic.Filter
	for _, s := range filters {
		if f, err := topic.ParseFilter(s); err == nil {
			parsed = append(parsed, f)
		}
	}
	matches := make([][]bool, len(parsed)) // matches[i][j]: parsed[i] matches topics[j]
	for i, f := range parsed {
		matches[i] = make([]bool, len(topics))
		for j, topic := range topics {
			matches[i][j] = f.Match(topic)
		}
	}
	for si, scope := range parsed {
		for fi, filter := range parsed {
			want := true
			for j := range topics {
				if matches[fi][j] && !matches[si][j] {
					want = false
					break
				}
			}
			if got := Covers(scope, filter); got != want {
				t.Errorf("Covers(%q, %q) = %v, want %v", scope, filter, got, want)
			}
		}
	}
}

// combos returns every '/'-joined sequence of 1 to n levels from levels.
func combos(levels []string, n int) []string {
	var out []string
	cur := [][]string{{}}
	for range n {
		var next [][]string
		for _, c := range cur {
			for _, l := range levels {
				s := append(append([]string(nil), c...), l)
				next = append(next, s)
				out = append(out, strings.Join(s, "/"))
			}
		}
		cur = next
	}
	return out
}

func TestAllowFilter(t *testing.T) {
	scopes := []topic.Filter{mustFilter(t, "telemetry/pump-7/#"), mustFilter(t, "presence/+")}
	tests := []struct {
		filter string
		want   bool
	}{
		{"telemetry/pump-7/temp", true},
		{"telemetry/pump-7/#", true},
		{"presence/pump-7", true},
		{"presence/+", true},
		{"presence/#", false},
		{"telemetry/+/temp", false},
		{"#", false},
	}
	for _, tt := range tests {
		if got := AllowFilter(scopes, mustFilter(t, tt.filter)); got != tt.want {
			t.Errorf("AllowFilter(%q) = %v, want %v", tt.filter, got, tt.want)
		}
	}
	if AllowFilter(nil, mustFilter(t, "a")) {
		t.Error("no scopes allowed a filter")
	}
}
