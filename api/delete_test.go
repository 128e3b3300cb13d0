package api

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// closerLog is a DeviceCloser that records the devices it was asked to
// close and holds one connection of each.
type closerLog struct {
	mu  sync.Mutex
	ids []string
}

func (c *closerLog) CloseDevice(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ids = append(c.ids, id)
	return 1
}

func TestDeleteDevice(t *testing.T) {
	f := newFake()
	live := livePresence{"d1": time.Date(2026, 11, 25, 10, 5, 0, 0, time.UTC)}
	ws, mqtt := &closerLog{}, &closerLog{}
	srv := serve(t, Config{Store: f, Presence: live, Closers: []DeviceCloser{ws, mqtt}}).URL
	if r := call(t, srv, "DELETE", "/v1/devices/d1", "", ""); r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("DELETE: %d %s, want 204 and no body", r.status, r.body)
	}
	if len(ws.ids) != 1 || ws.ids[0] != "d1" || len(mqtt.ids) != 1 {
		t.Fatalf("closers asked for %v and %v, want d1 once each", ws.ids, mqtt.ids)
	}
	if _, ok := live["d1"]; ok {
		t.Fatal("the presence tracker still knows d1")
	}
	if r := call(t, srv, "GET", "/v1/devices/d1", "", ""); r.status != http.StatusNotFound {
		t.Fatalf("GET after DELETE: %d", r.status)
	}
	if r := call(t, srv, "DELETE", "/v1/devices/d1", "", ""); r.status != http.StatusNotFound || r.errorCode(t) != "not_found" {
		t.Fatalf("second DELETE: %d %s, want 404", r.status, r.body)
	}
	if r := call(t, srv, "DELETE", "/v1/devices/a%20b", "", ""); r.status != http.StatusBadRequest || r.errorCode(t) != "bad_request" {
		t.Fatalf("DELETE of a bad id: %d %s, want 400", r.status, r.body)
	}
	if len(ws.ids) != 1 {
		t.Fatalf("closers asked again for %v: an unknown device has no connections to close", ws.ids)
	}
}

func TestDeleteDeviceStoreFailure(t *testing.T) {
	f := newFake()
	srv := serve(t, Config{Store: &failingDelete{fakeStore: f}}).URL
	if r := call(t, srv, "DELETE", "/v1/devices/d1", "", ""); r.status != http.StatusInternalServerError || r.errorCode(t) != "internal" {
		t.Fatalf("DELETE with a failing store: %d %s, want 500", r.status, r.body)
	}
}

type failingDelete struct{ *fakeStore }

func (failingDelete) DeleteDevice(string) error { return errors.New("disk on fire") }

// With credentials, only the admin token deletes.
func TestDeleteDeviceNeedsAdmin(t *testing.T) {
	srv := serve(t, Config{Store: newFake(), Auth: credentialed(t)}).URL
	cases := []struct {
		name, token string
		status      int
		code        string
	}{
		{"no token", "", 401, "unauthorized"},
		{"wrong token", "nope-nope-nope-nope", 401, "unauthorized"},
		{"device token", deviceTok, 401, "unauthorized"},
		{"watcher token", watcherTok, 403, "forbidden"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := call(t, srv, "DELETE", "/v1/devices/d1", c.token, "")
			if r.status != c.status || r.errorCode(t) != c.code {
				t.Fatalf("%d %s, want %d %s", r.status, r.body, c.status, c.code)
			}
		})
	}
	if r := call(t, srv, "DELETE", "/v1/devices/d1", adminTok, ""); r.status != http.StatusNoContent {
		t.Fatalf("admin: %d %s, want 204", r.status, r.body)
	}
}

// orderLog records the steps of a delete in the order they happen.
type orderLog struct {
	mu    sync.Mutex
	steps []string
}

func (o *orderLog) add(step string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.steps = append(o.steps, step)
}

type orderedPresence struct{ log *orderLog }

func (p orderedPresence) Delete(id string) { p.log.add("presence " + id) }
func (orderedPresence) LastSeen(string) (time.Time, bool, string, bool) {
	return time.Time{}, false, "", false
}

type orderedCloser struct{ log *orderLog }

func (c orderedCloser) CloseDevice(id string) int { c.log.add("close " + id); return 0 }

type orderedStore struct {
	*fakeStore
	log *orderLog
}

func (s orderedStore) DeleteDevice(id string) error {
	s.log.add("store " + id)
	return s.fakeStore.DeleteDevice(id)
}

// The presence tracker lets go of the device (and submits its offline
// event) before its connections are closed, and both before the store
// deletes the record: the store then commits that event first.
func TestDeleteDeviceOrder(t *testing.T) {
	log := &orderLog{}
	srv := serve(t, Config{Store: orderedStore{newFake(), log}, Presence: orderedPresence{log},
		Closers: []DeviceCloser{orderedCloser{log}}}).URL
	if r := call(t, srv, "DELETE", "/v1/devices/d1", "", ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	if got, want := fmt.Sprint(log.steps), "[presence d1 close d1 store d1]"; got != want {
		t.Fatalf("steps %s, want %s", got, want)
	}
}
