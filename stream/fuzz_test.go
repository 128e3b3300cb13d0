package stream

import (
	"errors"
	"slices"
	"testing"

	"github.com/telehub/telehub/internal/topic"
)

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"op":"subscribe","topics":["telemetry/+/temp"],"last_event_id":"abc-0000000000000001"}`,
		`{"op":"unsubscribe","topics":["#","#"]}`,
		`{"op":"subscribe","topics":["a/#/b"]}`,
		`{"op":"publish"}`,
		`{"op":"subscribe","topics":[null,1]}`,
		`[]`, `null`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := parseRequest(b, 8)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v does not wrap ErrBadRequest", err)
			}
			return
		}
		if req.op != opSubscribe && req.op != opUnsubscribe {
			t.Fatalf("accepted op %q", req.op)
		}
		if len(req.filters) == 0 || len(req.filters) > 8 {
			t.Fatalf("accepted %d filters", len(req.filters))
		}
		seen := map[string]bool{}
		for _, fl := range req.filters {
			if _, err := topic.ParseFilter(fl.String()); err != nil || seen[fl.String()] {
				t.Fatalf("filter %q invalid or repeated", fl)
			}
			seen[fl.String()] = true
		}
	})
}

// FuzzIndexMatch checks the index against topic.Filter.Match, before and
// after removing a subscription.
func FuzzIndexMatch(f *testing.F) {
	f.Add("telemetry/+/temp", "telemetry/#", "telemetry/d1/temp")
	f.Add("#", "+", "")
	f.Add("a/#", "+/+", "a")
	f.Add("$SYS/#", "#", "$SYS/x")
	f.Add("a//+", "a/+/", "a//")
	f.Fuzz(func(t *testing.T, a, b, name string) {
		var filters []topic.Filter
		for _, s := range []string{a, b} {
			if fl, err := topic.ParseFilter(s); err == nil {
				filters = append(filters, fl)
			}
		}
		x := new(index)
		subs := make([]*sub, len(filters))
		for i, fl := range filters {
			subs[i] = x.add(&watcher{mark: uint64(i)}, fl, fl.Levels())
		}
		check := func(live []bool) {
			var want, got []int
			for i, fl := range filters {
				if live[i] && fl.Match(name) {
					want = append(want, i)
				}
			}
			for _, w := range x.match(name, nil) {
				got = append(got, int(w.mark))
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("filters %q topic %q: index %v, Filter.Match %v", filters, name, got, want)
			}
		}
		live := []bool{true, true}
		check(live)
		if len(subs) > 0 {
			x.remove(subs[0])
			live[0] = false
			check(live)
		}
		if len(subs) > 1 {
			x.remove(subs[1])
			if !x.root.empty() {
				t.Fatal("nodes left after removing every subscription")
			}
		}
	})
}
