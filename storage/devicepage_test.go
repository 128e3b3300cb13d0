package storage

import (
	"fmt"
	"slices"
	"testing"
)

func TestScanDevices(t *testing.T) {
	s := openStore(t, testConfig(t))
	for _, id := range []string{"a", "b-1", "b-2", "b.3", "b1", "b10", "b2", "c"} {
		submitSync(t, s, reading(id, t0, 1, "temp"))
	}
	tests := []struct {
		after, prefix string
		max           int
		want          []string
		next          string
	}{
		{"", "", 100, []string{"a", "b-1", "b-2", "b.3", "b1", "b10", "b2", "c"}, ""},
		{"", "", 3, []string{"a", "b-1", "b-2"}, "b-2"},
		{"b-2", "", 3, []string{"b.3", "b1", "b10"}, "b10"},
		{"", "b1", 100, []string{"b1", "b10"}, ""},
		{"", "b1", 1, []string{"b1"}, "b1"},
		{"b1", "b1", 1, []string{"b10"}, ""},
		{"a", "b", 2, []string{"b-1", "b-2"}, "b-2"},
		{"b2", "", 100, []string{"c"}, ""},
		{"c", "", 100, nil, ""},
		{"", "zz", 100, nil, ""},
		{"zz", "b", 100, nil, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("after=%s/prefix=%s/max=%d", tt.after, tt.prefix, tt.max), func(t *testing.T) {
			devs, next, err := s.ScanDevices(tt.after, tt.prefix, tt.max)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]string, 0, len(devs))
			for _, d := range devs {
				got = append(got, d.ID)
			}
			if !slices.Equal(got, append([]string{}, tt.want...)) || next != tt.next {
				t.Fatalf("got %v next %q, want %v next %q", got, next, tt.want, tt.next)
			}
		})
	}
}
