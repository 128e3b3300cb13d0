package api

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/telehub/telehub/storage"
)

// In a cluster, /v1/events?after= with a peer hub's id answers this hub's
// events from that id's time minus the margin, as a watcher's resume does;
// ids carry their event's time.
func TestEventsAfterPeerID(t *testing.T) {
	f := newFake() // events 5..11, event id at fakeTime(id)
	f.ids = f.ids.InCluster(2 * time.Second)
	srv := serve(t, Config{Store: f})
	peer := storage.NewIDCodec("ffffff").InCluster(0)
	cases := []struct {
		name string
		from string
		want []uint64
	}{
		{"inside the log", peer.FormatAt(3, fakeTime(9)), []uint64{7, 8, 9, 10, 11}},
		{"older than the log", peer.FormatAt(3, fakeTime(1)), []uint64{5, 6, 7, 8, 9, 10, 11}},
		{"newer than the log", peer.FormatAt(3, fakeTime(30)), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []event
			if code := get(t, srv, "/v1/events?after="+c.from, &got); code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %d events, want %v", len(got), c.want)
			}
			for i, id := range c.want {
				if want := f.ids.FormatAt(id, fakeTime(id)); got[i].ID != want {
					t.Errorf("event %d: id %q, want %q", i, got[i].ID, want)
				}
			}
		})
	}
}

// Without a time, or newest first, another hub's id is gone as on a single
// hub.
func TestEventsPeerIDGone(t *testing.T) {
	f := newFake()
	f.ids = f.ids.InCluster(2 * time.Second)
	srv := serve(t, Config{Store: f})
	oldest := f.ids.FormatAt(5, fakeTime(5))
	for _, q := range []string{
		"?after=ffffff-0000000000000006",
		"?order=desc&before=" + storage.NewIDCodec("ffffff").InCluster(0).FormatAt(3, fakeTime(9)),
	} {
		var body struct {
			Error struct{ Code, Message string }
		}
		if code := get(t, srv, "/v1/events"+q, &body); code != http.StatusGone || !strings.Contains(body.Error.Message, oldest) {
			t.Errorf("%s: status %d %+v, want 410 naming %s", q, code, body.Error, oldest)
		}
	}
}
