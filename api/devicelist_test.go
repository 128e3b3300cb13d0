package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/telehub/telehub/internal/auth"
	"github.com/telehub/telehub/internal/topic"
	"github.com/telehub/telehub/storage"
)

// manyDevices returns a fake holding n devices dev-0000… sorted by id; the
// odd ones are recorded online.
func manyDevices(n int) *fakeStore {
	f := newFake()
	f.devices = nil
	for i := range n {
		f.devices = append(f.devices, storage.Device{ID: fmt.Sprintf("dev-%04d", i), Online: i%2 == 1, Transport: "ws"})
	}
	return f
}

type listedDevice struct {
	ID      string   `json:"id"`
	Online  bool     `json:"online"`
	Metrics []string `json:"metrics"`
}

// listDevices GETs path with token and returns the devices and the next
// page's path, "" when there is none.
func listDevicesAt(t *testing.T, srv, path, token string) ([]listedDevice, string) {
	t.Helper()
	r := call(t, srv, "GET", path, token, "")
	if r.status != http.StatusOK {
		t.Fatalf("%s: %d %s", path, r.status, r.body)
	}
	var page []listedDevice
	r.decode(t, &page)
	if page == nil {
		t.Fatalf("%s: an empty page must be [], not null", path)
	}
	link := r.header.Get("Link")
	if link == "" {
		return page, ""
	}
	next, ok := strings.CutSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
	if !ok || !strings.HasPrefix(next, "/v1/devices?") {
		t.Fatalf("%s: Link %q", path, link)
	}
	return page, next
}

// walkDevices follows the next links from path and returns every id.
func walkDevices(t *testing.T, srv, path, token string) (ids []string, pages int) {
	t.Helper()
	for path != "" {
		page, next := listDevicesAt(t, srv, path, token)
		for _, d := range page {
			ids = append(ids, d.ID)
		}
		pages++
		path = next
		if pages > 100 {
			t.Fatal("more than 100 pages")
		}
	}
	return ids, pages
}

func TestDevicesPaging(t *testing.T) {
	f := manyDevices(2500)
	srv := serve(t, Config{Store: f}).URL
	all := make([]string, len(f.devices))
	for i, d := range f.devices {
		all[i] = d.ID
	}
	tests := []struct {
		path  string
		want  []string
		pages int
	}{
		{"/v1/devices", all, 3}, // default limit 1000
		{"/v1/devices?limit=1200", all, 3},
		{"/v1/devices?limit=2500", all, 1}, // exactly all: no next page
		{"/v1/devices?limit=20000", all, 1},
		{"/v1/devices?after=dev-2490", all[2491:], 1},
		{"/v1/devices?prefix=dev-01&limit=30", all[100:200], 4},
		{"/v1/devices?prefix=dev-249", all[2490:], 1},
		{"/v1/devices?prefix=dev-01&after=dev-0150", all[151:200], 1},
		{"/v1/devices?prefix=nothing", nil, 1},
		{"/v1/devices?online=true&prefix=dev-00&limit=7", oddOrEven(all[:100], 1), 8},
		{"/v1/devices?online=false&prefix=dev-00", oddOrEven(all[:100], 0), 1},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, pages := walkDevices(t, srv, tt.path, "")
			if !slices.Equal(got, tt.want) || pages != tt.pages {
				t.Fatalf("%d devices in %d pages (%v…), want %d in %d", len(got), pages, got[:min(3, len(got))], len(tt.want), tt.pages)
			}
		})
	}
}

// oddOrEven returns the ids at odd (1) or even (0) positions.
func oddOrEven(ids []string, odd int) []string {
	var out []string
	for i, id := range ids {
		if i%2 == odd {
			out = append(out, id)
		}
	}
	return out
}

// The live presence decides online, as in the list itself.
func TestDevicesOnlineFollowsPresence(t *testing.T) {
	f := newFake() // d1 recorded online, d2 offline
	srv := serve(t, Config{Store: f, Presence: livePresence{"d2": f.devices[1].LastSeen}}).URL
	got, _ := walkDevices(t, srv, "/v1/devices?online=true", "")
	if !slices.Equal(got, []string{"d1", "d2"}) {
		t.Fatalf("online: %v, want d1 (stored) and d2 (live)", got)
	}
}

func TestDevicesRejections(t *testing.T) {
	srv := serve(t, Config{Store: newFake()}).URL
	cases := []struct{ name, query, mention string }{
		{"limit zero", "limit=0", "limit"},
		{"limit negative", "limit=-5", "limit"},
		{"limit word", "limit=all", "limit"},
		{"after not an id", "after=a%2Fb", "after"},
		{"after too long", "after=" + strings.Repeat("a", 65), "after"},
		{"prefix with a slash", "prefix=dev%2F", "prefix"},
		{"prefix with a wildcard", "prefix=dev%2B", "prefix"},
		{"prefix starting with a dot", "prefix=.x", "prefix"},
		{"online not a bool", "online=yes", "online"},
		{"online as a number", "online=1", "online"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := call(t, srv, "GET", "/v1/devices?"+c.query, "", "")
			if r.status != http.StatusBadRequest || r.errorCode(t) != "bad_request" || !strings.Contains(string(r.body), c.mention) {
				t.Fatalf("%d %s, want 400 naming %s", r.status, r.body, c.mention)
			}
		})
	}
}

// A watcher lists, and reads, only the devices its scopes can match.
func TestDevicesWithinWatcherScopes(t *testing.T) {
	f := manyDevices(20)
	a, err := auth.New(auth.Config{
		Path:       filepath.Join(t.TempDir(), auth.FileName),
		AdminToken: adminTok,
		Watchers: []auth.WatcherConfig{
			{Name: "one", Token: "one-token-0123456789", Topics: []string{"telemetry/dev-0001/#"}},
			{Name: "some", Token: "some-token-0123456789", Topics: []string{"presence/dev-0003", "errors/dev-0004", "+/dev-0005/temp", "telemetry/dev-0006"}},
			{Name: "all", Token: "all-token-0123456789", Topics: []string{"presence/+"}},
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, Config{Store: f, Auth: a}).URL
	tests := []struct {
		token string
		want  []string
	}{
		{"one-token-0123456789", []string{"dev-0001"}},
		{"some-token-0123456789", []string{"dev-0003", "dev-0004", "dev-0005"}},
		{"all-token-0123456789", nil}, // all 20
		{adminTok, nil},
	}
	for _, tt := range tests {
		got, _ := walkDevices(t, srv, "/v1/devices?limit=3", tt.token)
		want := tt.want
		if want == nil {
			for _, d := range f.devices {
				want = append(want, d.ID)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", tt.token, got, want)
		}
	}
	if r := call(t, srv, "GET", "/v1/devices/dev-0002", "one-token-0123456789", ""); r.status != http.StatusNotFound {
		t.Errorf("a device outside the scopes: %d, want 404", r.status)
	}
	if r := call(t, srv, "GET", "/v1/devices/dev-0001", "one-token-0123456789", ""); r.status != http.StatusOK {
		t.Errorf("a device inside the scopes: %d %s", r.status, r.body)
	}
}

func TestMayMatch(t *testing.T) {
	tests := []struct {
		filter string
		topic  []string
		want   bool
	}{
		{"#", []string{"presence", "d1"}, true},
		{"+/d1", []string{"presence", "d1"}, true},
		{"+/+", []string{"telemetry", "d1", anyLevel}, false},
		{"telemetry/d1/#", []string{"telemetry", "d1", anyLevel}, true},
		{"telemetry/d1/temp", []string{"telemetry", "d1", anyLevel}, true},
		{"telemetry/d1/temp/#", []string{"telemetry", "d1", anyLevel}, true},
		{"telemetry/d1/temp/x", []string{"telemetry", "d1", anyLevel}, false},
		{"telemetry/d1/a b", []string{"telemetry", "d1", anyLevel}, false},
		{"telemetry/d1", []string{"telemetry", "d1", anyLevel}, false},
		{"telemetry/d2/#", []string{"telemetry", "d1", anyLevel}, false},
		{"presence/d1/#", []string{"presence", "d1"}, true},
		{"presence/d10", []string{"presence", "d1"}, false},
	}
	for _, tt := range tests {
		f := parseFilter(t, tt.filter)
		if got := mayMatch(f.Levels(), tt.topic); got != tt.want {
			t.Errorf("mayMatch(%s, %v) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func parseFilter(t *testing.T, s string) topic.Filter {
	t.Helper()
	f, err := topic.ParseFilter(s)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
