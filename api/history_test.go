package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// eventIDs GETs path and returns the ids of the events answered, failing
// unless the status is 200.
func eventIDs(t *testing.T, srv string, path string) ([]string, http.Header) {
	t.Helper()
	resp := call(t, srv, "GET", path, "", "")
	if resp.status != http.StatusOK {
		t.Fatalf("%s: status %d %s", path, resp.status, resp.body)
	}
	var got []struct {
		ID    string          `json:"id"`
		Event string          `json:"event"`
		Data  json.RawMessage `json:"data"`
	}
	resp.decode(t, &got)
	if got == nil {
		t.Fatalf("%s: an empty result must be [], not null", path)
	}
	out := make([]string, len(got))
	for i, e := range got {
		out[i] = e.ID
		if e.Event == "" || len(e.Data) == 0 {
			t.Fatalf("%s: event %+v without kind or data", path, e)
		}
	}
	return out, resp.header
}

func TestEventsNewestFirst(t *testing.T) {
	f := newFake()
	srv := serve(t, Config{Store: f}).URL
	id := f.ids.Format
	cases := []struct {
		query string
		want  []uint64
	}{
		{"?order=desc", []uint64{11, 10, 9, 8, 7, 6, 5}},
		{"?order=desc&limit=2", []uint64{11, 10}},
		{"?order=desc&topic=telemetry/d1/temp", []uint64{10, 5}},
		{"?order=desc&topic=telemetry/%2B/temp&limit=2", []uint64{10, 6}},
		{"?order=desc&topic=telemetry/d1/%23&topic=errors/%23", []uint64{10, 9, 8, 5}},
		{"?order=desc&before=" + id(9), []uint64{8, 7, 6, 5}},
		{"?order=desc&before=" + id(9) + "&topic=telemetry/d1/%23&limit=1", []uint64{8}},
		{"?order=desc&before=" + id(5), nil},
		{"?order=desc&before=" + id(3), nil}, // older than anything retained: nothing before it
		{"?order=desc&before=" + id(99), []uint64{11, 10, 9, 8, 7, 6, 5}},
		{"?order=asc&limit=2", []uint64{5, 6}},
		{"?order=desc&topic=nothing/here", nil},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			got, _ := eventIDs(t, srv, "/v1/events"+c.query)
			want := make([]string, len(c.want))
			for i, n := range c.want {
				want[i] = id(n)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
}

// A full page links to the next one; following the links walks every
// matching event once, in either order.
func TestEventsNextLink(t *testing.T) {
	f := newFake()
	srv := serve(t, Config{Store: f}).URL
	for _, start := range []string{"/v1/events?order=desc&limit=2&token=secret-secret", "/v1/events?limit=2"} {
		var all []string
		path := start
		for range 10 {
			got, h := eventIDs(t, srv, path)
			all = append(all, got...)
			link := h.Get("Link")
			if link == "" {
				break
			}
			if strings.Contains(link, "secret") {
				t.Fatalf("Link %q carries the token", link)
			}
			target, ok := strings.CutSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
			if !ok {
				t.Fatalf("Link %q", link)
			}
			u, err := url.Parse(target)
			if err != nil || u.Path != "/v1/events" {
				t.Fatalf("Link %q: %v", link, err)
			}
			path = target
		}
		if len(all) != 7 || all[0] == all[1] {
			t.Fatalf("%s: walked %v, want all 7 events once", start, all)
		}
	}
}

func TestEventsOrderRejections(t *testing.T) {
	f := newFake()
	srv := serve(t, Config{Store: f}).URL
	cases := []struct {
		name, query string
		status      int
		code        string
		mention     string
	}{
		{"unknown order", "?order=newest", 400, "bad_request", "order"},
		{"before with asc", "?order=asc&before=" + f.ids.Format(8), 400, "bad_request", "before"},
		{"before without order", "?before=" + f.ids.Format(8), 400, "bad_request", "order=desc"},
		{"after with desc", "?order=desc&after=" + f.ids.Format(8), 400, "bad_request", "after"},
		{"malformed before", "?order=desc&before=nonsense", 400, "bad_request", "before"},
		{"foreign before", "?order=desc&before=ffffff-0000000000000006", 410, "gone", f.ids.Format(5)},
		{"bad filter", "?order=desc&topic=a/%23/b", 400, "bad_request", "a/#/b"},
		{"limit zero", "?order=desc&limit=0", 400, "bad_request", "limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := call(t, srv, "GET", "/v1/events"+c.query, "", "")
			if resp.status != c.status {
				t.Fatalf("status %d, want %d: %s", resp.status, c.status, resp.body)
			}
			var body struct {
				Error struct{ Code, Message string }
			}
			resp.decode(t, &body)
			if body.Error.Code != c.code || !strings.Contains(body.Error.Message, c.mention) {
				t.Fatalf("error %+v, want code %s naming %q", body.Error, c.code, c.mention)
			}
		})
	}
}
