package httpx

import (
	"net/url"
	"strings"
	"testing"
)

func TestTopicQueryProblem(t *testing.T) {
	cases := []struct {
		rawQuery string // as a client sends it, the fragment already cut off
		want     string // "" when fine
	}{
		{"topic=telemetry/%23", ""},
		{"topic=telemetry/%2B/temp&topic=presence/%23", ""},
		{"", ""},
		{"topic=telemetry/", `topic filter "telemetry/" ends in "/": write "#" as %23 in a URL`},
		{"topic=telemetry/%23&topic=errors/", `"errors/"`},
		{"topic=", `empty topic filter: a "#" must be written %23`},
		{"topic=telemetry/+/temp", `holds a space: write "+" as %2B`},
	}
	for _, c := range cases {
		q, err := url.ParseQuery(c.rawQuery)
		if err != nil {
			t.Fatal(err)
		}
		got := TopicQueryProblem(q["topic"])
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%q: %q, want %q", c.rawQuery, got, c.want)
		}
	}
	// The hint gives the encoded filter to use.
	if got := TopicQueryProblem([]string{"telemetry/"}); !strings.Contains(got, "topic=telemetry/%23") {
		t.Errorf("hint %q lacks the fixed query", got)
	}
}

func FuzzTopicQueryProblem(f *testing.F) {
	for _, s := range []string{"telemetry/#", "telemetry/", "", "a b", "#"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := TopicQueryProblem([]string{s})
		bad := s == "" || strings.HasSuffix(s, "/") || strings.Contains(s, " ")
		if bad != (p != "") {
			t.Fatalf("%q: problem %q", s, p)
		}
	})
}
