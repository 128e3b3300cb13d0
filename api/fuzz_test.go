package api

import (
	"net/url"
	"testing"

	"github.com/telehub/telehub/internal/topic"
)

// FuzzDeviceQuery checks that any query of GET /v1/devices is either
// refused or parsed into values within their bounds.
func FuzzDeviceQuery(f *testing.F) {
	for _, s := range []string{"", "limit=10&after=d1&prefix=d&online=true", "limit=0", "limit=99999999999999999999",
		"after=a%2Fb", "prefix=.x", "online=1", "limit=-1&online=false", "prefix=" + string(make([]byte, 70))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		dq, err := parseDeviceQuery(q)
		if err != nil {
			return
		}
		if dq.limit < 1 || dq.limit > maxDeviceLimit {
			t.Fatalf("limit %d", dq.limit)
		}
		if dq.after != "" && topic.ValidDeviceID(dq.after) != nil {
			t.Fatalf("after %q accepted", dq.after)
		}
		if dq.prefix != "" && !topic.ValidName(dq.prefix) {
			t.Fatalf("prefix %q accepted", dq.prefix)
		}
	})
}

// FuzzEventsOrder checks that the order and cursor combination of GET
// /v1/events is refused or one of the two valid forms.
func FuzzEventsOrder(f *testing.F) {
	for _, s := range []string{"order=desc&before=x", "order=asc&after=x", "before=x", "order=desc&after=x", "order=up", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil || checkOrder(q) != nil {
			return
		}
		switch q.Get("order") {
		case orderDesc:
			if q.Has("after") {
				t.Fatal("after accepted with desc")
			}
		case "", orderAsc:
			if q.Has("before") {
				t.Fatal("before accepted with asc")
			}
		default:
			t.Fatalf("order %q accepted", q.Get("order"))
		}
	})
}
