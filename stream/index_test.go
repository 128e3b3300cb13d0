package stream

import (
	"slices"
	"strings"
	"testing"

	"github.com/telehub/telehub/internal/topic"
)

// indexWith builds an index with one watcher per filter; watchers are
// told apart by their mark, which holds the filter's position.
func indexWith(t testing.TB, filters ...string) (*index, []*sub) {
	t.Helper()
	x := new(index)
	subs := make([]*sub, len(filters))
	for i, s := range filters {
		f, err := topic.ParseFilter(s)
		if err != nil {
			t.Fatalf("filter %q: %v", s, err)
		}
		subs[i] = x.add(&watcher{mark: uint64(i)}, f, f.Levels())
	}
	return x, subs
}

// matched returns the positions of the filters that match topic, sorted.
func matched(x *index, topic string) []int {
	var out []int
	for _, w := range x.match(topic, nil) {
		out = append(out, int(w.mark))
	}
	slices.Sort(out)
	return out
}

func TestIndexMatch(t *testing.T) {
	filters := []string{
		"#",                 // 0
		"telemetry/#",       // 1
		"telemetry/+/temp",  // 2
		"telemetry/d1/temp", // 3
		"telemetry/d1/#",    // 4
		"+/d1",              // 5
		"+",                 // 6
		"presence/#",        // 7
		"telemetry/+/+",     // 8
		"telemetry/+",       // 9
		"$SYS/#",            // 10
		"telemetry/d1/temp", // 11: the same filter twice
		"a//b",              // 12: an empty level
		"a/+/b",             // 13
	}
	x, _ := indexWith(t, filters...)
	tests := []struct {
		topic string
		want  []int
	}{
		{"telemetry/d1/temp", []int{0, 1, 2, 3, 4, 8, 11}},
		{"telemetry/d2/temp", []int{0, 1, 2, 8}},
		{"telemetry/d1/hum", []int{0, 1, 4, 8}},
		{"telemetry/d1", []int{0, 1, 4, 5, 9}},
		{"telemetry", []int{0, 1, 6}},
		{"presence/d1", []int{0, 5, 7}},
		{"presence", []int{0, 6, 7}},
		{"errors/d2", []int{0}},
		{"telemetry/d1/temp/x", []int{0, 1, 4}},
		{"$SYS/x", []int{10}},
		{"a//b", []int{0, 12, 13}},
		{"", []int{0, 6}},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			if got := matched(x, tt.topic); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			for i, f := range filters {
				pf, _ := topic.ParseFilter(f)
				if pf.Match(tt.topic) != slices.Contains(tt.want, i) {
					t.Errorf("filter %q: index and Filter.Match disagree", f)
				}
			}
		})
	}
}

func TestIndexRemove(t *testing.T) {
	x, subs := indexWith(t, "a/+/c", "a/b/c", "a/#", "#", "a/+/c")
	x.remove(subs[0])
	if got := matched(x, "a/b/c"); !slices.Equal(got, []int{1, 2, 3, 4}) {
		t.Fatalf("after removing 0: %v", got)
	}
	for _, i := range []int{4, 1, 2, 3} {
		x.remove(subs[i])
	}
	if got := matched(x, "a/b/c"); len(got) != 0 {
		t.Fatalf("after removing all: %v", got)
	}
	if !x.root.empty() {
		t.Errorf("nodes left behind: %+v", x.root)
	}
}

func TestIndexSharedNodes(t *testing.T) {
	x, subs := indexWith(t, "a/b", "a/b/c")
	x.remove(subs[0])
	if got := matched(x, "a/b/c"); !slices.Equal(got, []int{1}) {
		t.Fatalf("got %v", got)
	}
	if n := x.root.children["a"].children["b"]; n == nil || len(n.subs) != 0 {
		t.Fatalf("the inner node of a/b/c went away")
	}
	x.remove(subs[1])
	if len(x.root.children) != 0 {
		t.Fatal("empty nodes kept")
	}
}

func BenchmarkIndexMatch(b *testing.B) {
	var filters []string
	for i := range 10000 {
		filters = append(filters, "telemetry/dev"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+"/temp")
	}
	filters = append(filters, "telemetry/+/temp", "#")
	x, _ := indexWith(b, filters...)
	out := make([]*watcher, 0, 16)
	for b.Loop() {
		out = x.match("telemetry/devxa/temp", out[:0])
	}
}
