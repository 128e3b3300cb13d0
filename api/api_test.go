package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/topic"
	"github.com/telehub/telehub/storage"
)

// fakeStore is an in-memory Store: records with ids oldest..last, the ones
// below oldest trimmed.
type fakeStore struct {
	ids     storage.IDCodec
	recs    []storage.Record // ascending ids
	devices []storage.Device
	states  map[string][]storage.MetricState
	err     error
}

// ScanDevices pages through the fake's devices, which are sorted by id.
func (f *fakeStore) ScanDevices(after, prefix string, max int) ([]storage.Device, string, error) {
	if f.err != nil {
		return nil, "", f.err
	}
	var out []storage.Device
	for _, d := range f.devices {
		if d.ID <= after || !strings.HasPrefix(d.ID, prefix) {
			continue
		}
		if len(out) == max {
			return out, out[len(out)-1].ID, nil
		}
		out = append(out, d)
	}
	return out, "", nil
}

func (f *fakeStore) Device(id string) (storage.Device, []storage.MetricState, error) {
	if f.err != nil {
		return storage.Device{}, nil, f.err
	}
	for _, d := range f.devices {
		if d.ID == id {
			return d, f.states[id], nil
		}
	}
	return storage.Device{}, nil, storage.ErrNotFound
}

// DeleteDevice removes the device from the fake's list.
func (f *fakeStore) DeleteDevice(id string) error {
	if f.err != nil {
		return f.err
	}
	for i, d := range f.devices {
		if d.ID == id {
			f.devices = append(f.devices[:i:i], f.devices[i+1:]...)
			delete(f.states, id)
			return nil
		}
	}
	return storage.ErrNotFound
}

func (f *fakeStore) IDs() storage.IDCodec { return f.ids }

func (f *fakeStore) OldestID() (uint64, bool) {
	if len(f.recs) == 0 {
		return 0, false
	}
	return f.recs[0].ID, true
}

func (f *fakeStore) OldestEvent() (uint64, time.Time, bool) {
	if len(f.recs) == 0 {
		return 0, time.Time{}, false
	}
	return f.recs[0].ID, f.recs[0].Time, true
}

func (f *fakeStore) AfterTime(t time.Time) (uint64, error) {
	for _, r := range f.recs {
		if !r.Time.Before(t) {
			return r.ID - 1, nil
		}
	}
	return f.LastID(), nil
}

// fakeTime is the Record.Time of the fake store's event id.
func fakeTime(id uint64) time.Time {
	return time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).Add(time.Duration(id) * time.Second)
}

func (f *fakeStore) LastID() uint64 {
	if len(f.recs) == 0 {
		return 0
	}
	return f.recs[len(f.recs)-1].ID
}

// Scan looks at no more than 3 records per call, like the real store's
// bounded window, so that the API's paging loop is exercised.
func (f *fakeStore) Scan(after, upTo uint64, match func(string) bool, limit int) ([]storage.Record, uint64, error) {
	if f.err != nil {
		return nil, 0, f.err
	}
	var out []storage.Record
	next, looked := after, 0
	for _, r := range f.recs {
		if r.ID <= after || r.ID > upTo {
			continue
		}
		if looked == 3 || len(out) == limit {
			return out, next, nil
		}
		looked++
		next = r.ID
		if match == nil || match(r.Topic) {
			out = append(out, r)
		}
	}
	return out, upTo, nil
}

// Latest looks at no more than 3 records per call, like the real store's
// window when it reads the log, so that the API's loop is exercised.
func (f *fakeStore) Latest(before uint64, filters []topic.Filter, limit int) ([]storage.Record, uint64, error) {
	if f.err != nil {
		return nil, 0, f.err
	}
	match := matcher(filters)
	var out []storage.Record
	looked := 0
	for i := len(f.recs) - 1; i >= 0; i-- {
		r := f.recs[i]
		if r.ID >= before {
			continue
		}
		if looked == 3 || len(out) == limit {
			return out, r.ID + 1, nil
		}
		looked++
		if match == nil || match(r.Topic) {
			out = append(out, r)
		}
	}
	return out, 0, nil
}

func newFake() *fakeStore {
	f := &fakeStore{ids: storage.NewIDCodec("abc123"), states: map[string][]storage.MetricState{}}
	topics := []string{"telemetry/d1/temp", "telemetry/d2/temp", "presence/d1", "telemetry/d1/hum", "errors/d2",
		"telemetry/d1/temp", "telemetry/d2/hum"}
	kinds := map[string]bridge.Kind{"telemetry": bridge.KindTelemetry, "presence": bridge.KindPresence, "errors": bridge.KindError}
	for i, tp := range topics {
		root, _, _ := strings.Cut(tp, "/")
		f.recs = append(f.recs, storage.Record{ID: uint64(i + 5), Kind: kinds[root], Topic: tp, Time: fakeTime(uint64(i + 5)),
			Data: []byte(`{"topic":"` + tp + `","n":` + string(rune('0'+i)) + `}`)})
	}
	seen := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	f.devices = []storage.Device{
		{ID: "d1", Transport: "ws", Online: true, LastSeen: seen, Metrics: []string{"hum", "temp"}},
		{ID: "d2", Transport: "mqtt", LastSeen: seen, Metrics: []string{}},
	}
	f.states["d1"] = []storage.MetricState{{Metric: "temp", State: json.RawMessage(`{"value":21.5,"unit":"Cel","ts":"2026-11-25T10:00:00.000Z"}`)}}
	return f
}

type livePresence map[string]time.Time

func (l livePresence) Delete(id string) { delete(l, id) }

func (l livePresence) LastSeen(id string) (time.Time, bool, string, bool) {
	t, ok := l[id]
	return t, ok, "mqtt", ok
}

func serve(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	a.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, srv *httptest.Server, path string, v any) int {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: content type %q", path, ct)
	}
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	return resp.StatusCode
}

func TestNewNeedsAStore(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, ErrNoStore) {
		t.Fatalf("err %v, want ErrNoStore", err)
	}
}

func TestEvents(t *testing.T) {
	f := newFake()
	srv := serve(t, Config{Store: f})
	cases := []struct {
		query string
		want  []uint64
	}{
		{"", []uint64{5, 6, 7, 8, 9, 10, 11}},
		{"?limit=2", []uint64{5, 6}},
		{"?topic=telemetry/%2B/temp", []uint64{5, 6, 10}},
		{"?topic=telemetry/d1/%23&topic=errors/%23", []uint64{5, 8, 9, 10}},
		{"?after=" + f.ids.Format(8), []uint64{9, 10, 11}},
		{"?after=" + f.ids.Format(4), []uint64{5, 6, 7, 8, 9, 10, 11}}, // just before the oldest: nothing missed
		{"?after=" + f.ids.Format(11), nil},
		{"?limit=20000", []uint64{5, 6, 7, 8, 9, 10, 11}},
		{"?topic=presence/%23&after=" + f.ids.Format(5) + "&limit=1", []uint64{7}},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			var got []struct {
				ID    string          `json:"id"`
				Event string          `json:"event"`
				Data  json.RawMessage `json:"data"`
			}
			if code := get(t, srv, "/v1/events"+c.query, &got); code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			if got == nil {
				t.Fatal("an empty result must be [], not null")
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %d events, want %v", len(got), c.want)
			}
			for i, id := range c.want {
				rec := f.recs[id-5]
				if got[i].ID != f.ids.Format(id) || got[i].Event != rec.Kind.String() || string(got[i].Data) != string(rec.Data) {
					t.Errorf("event %d: %+v, want id %d %s", i, got[i], id, rec.Data)
				}
			}
		})
	}
}

func TestEventsRejections(t *testing.T) {
	f := newFake()
	srv := serve(t, Config{Store: f})
	cases := []struct {
		name, query string
		status      int
		code        string
		mention     string
	}{
		{"bad filter", "?topic=telemetry/%23/x", 400, "bad_request", "telemetry/#/x"},
		{"mixed wildcard", "?topic=tele%2Bmetry", 400, "bad_request", "tele+metry"},
		{"empty filter", "?topic=", 400, "bad_request", "topic"},
		// The client cuts the unencoded # and what follows (the fragment).
		{"unencoded hash", "?topic=telemetry/#", 400, "bad_request", "topic=telemetry/%23"},
		{"unencoded lone hash", "?topic=#", 400, "bad_request", "%23"},
		{"unencoded plus", "?topic=telemetry/+/temp", 400, "bad_request", "%2B"},
		{"long filter", "?topic=" + strings.Repeat("a", 257), 400, "bad_request", "topic"},
		{"limit zero", "?limit=0", 400, "bad_request", "limit"},
		{"limit word", "?limit=many", 400, "bad_request", "limit"},
		{"malformed after", "?after=nonsense", 400, "bad_request", "after"},
		{"foreign after", "?after=ffffff-0000000000000006", 410, "gone", f.ids.Format(5)},
		{"expired after", "?after=" + f.ids.Format(3), 410, "gone", f.ids.Format(5)},
		// 11 is the newest id: 12 comes from a data directory restored
		// from an older copy, and the events minted again under it would
		// be skipped.
		{"after beyond the newest", "?after=" + f.ids.Format(12), 410, "gone", f.ids.Format(5)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body struct {
				Error struct{ Code, Message string }
			}
			if code := get(t, srv, "/v1/events"+c.query, &body); code != c.status {
				t.Fatalf("status %d, want %d", code, c.status)
			}
			if body.Error.Code != c.code || !strings.Contains(body.Error.Message, c.mention) {
				t.Fatalf("error %+v, want code %s naming %q", body.Error, c.code, c.mention)
			}
		})
	}
}

func TestEventsExpiredWhenNothingIsRetained(t *testing.T) {
	f := newFake()
	last := f.recs[len(f.recs)-1]
	f.recs = nil
	// Every event up to 11 was trimmed: resuming from 3 has missed some.
	f2 := &trimmedStore{fakeStore: f, last: last.ID}
	srv := serve(t, Config{Store: f2})
	if code := get(t, srv, "/v1/events?after="+f.ids.Format(3), nil); code != http.StatusGone {
		t.Fatalf("status %d, want 410", code)
	}
	var got []json.RawMessage
	if code := get(t, srv, "/v1/events?after="+f.ids.Format(11), &got); code != http.StatusOK || len(got) != 0 {
		t.Fatalf("resuming at the last id: %d %v", code, got)
	}
	if code := get(t, srv, "/v1/events?after="+f.ids.Format(12), nil); code != http.StatusGone {
		t.Fatalf("after beyond the last id: status %d, want 410", code)
	}
}

type trimmedStore struct {
	*fakeStore
	last uint64
}

func (s *trimmedStore) LastID() uint64 { return s.last }

func TestStoreFailureIs500(t *testing.T) {
	f := newFake()
	f.err = errors.New("disk on fire")
	srv := serve(t, Config{Store: f})
	for _, path := range []string{"/v1/events", "/v1/devices", "/v1/devices/d1"} {
		var body struct {
			Error struct{ Code, Message string }
		}
		if code := get(t, srv, path, &body); code != http.StatusInternalServerError || body.Error.Code != "internal" {
			t.Errorf("%s: %d %+v", path, code, body)
		}
		if strings.Contains(body.Error.Message, "fire") {
			t.Errorf("%s: internal error text leaked: %q", path, body.Error.Message)
		}
	}
}

func TestDevices(t *testing.T) {
	f := newFake()
	later := time.Date(2026, 11, 25, 10, 5, 0, 0, time.UTC)
	srv := serve(t, Config{Store: f, Presence: livePresence{"d2": later}})
	var list []struct {
		ID        string   `json:"id"`
		Online    bool     `json:"online"`
		Transport string   `json:"transport"`
		LastSeen  string   `json:"last_seen"`
		Metrics   []string `json:"metrics"`
	}
	if code := get(t, srv, "/v1/devices", &list); code != http.StatusOK || len(list) != 2 {
		t.Fatalf("%d %+v", code, list)
	}
	if d := list[0]; d.ID != "d1" || !d.Online || d.Transport != "ws" || d.LastSeen != "2026-11-25T10:00:00.000Z" ||
		strings.Join(d.Metrics, ",") != "hum,temp" {
		t.Errorf("d1 from storage: %+v", d)
	}
	if d := list[1]; !d.Online || d.LastSeen != "2026-11-25T10:05:00.000Z" || d.Metrics == nil {
		t.Errorf("d2 with live presence: %+v", d)
	}

	var one struct {
		ID    string                    `json:"id"`
		State map[string]map[string]any `json:"state"`
	}
	if code := get(t, srv, "/v1/devices/d1", &one); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if one.ID != "d1" || one.State["temp"]["value"] != 21.5 || one.State["temp"]["unit"] != "Cel" {
		t.Errorf("d1: %+v", one)
	}
	var body struct {
		Error struct{ Code, Message string }
	}
	if code := get(t, srv, "/v1/devices/nope", &body); code != http.StatusNotFound || body.Error.Code != "not_found" {
		t.Errorf("unknown device: %d %+v", code, body)
	}
	if code := get(t, srv, "/v1/devices/a%20b", &body); code != http.StatusBadRequest || body.Error.Code != "bad_request" {
		t.Errorf("bad device id: %d %+v", code, body)
	}
}

func TestHealth(t *testing.T) {
	var ready error
	srv := serve(t, Config{Store: newFake(), Ready: func() error { return ready }})
	if code := get(t, srv, "/healthz", nil); code != http.StatusOK {
		t.Errorf("healthz %d", code)
	}
	if code := get(t, srv, "/readyz", nil); code != http.StatusOK {
		t.Errorf("readyz %d", code)
	}
	ready = errors.New("not connected to the external MQTT broker")
	var body struct {
		Error struct{ Code, Message string }
	}
	if code := get(t, srv, "/readyz", &body); code != http.StatusServiceUnavailable || body.Error.Code != "unavailable" ||
		!strings.Contains(body.Error.Message, "broker") {
		t.Errorf("not ready: %d %+v", code, body)
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
