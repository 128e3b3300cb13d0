package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/telehub/telehub/storage"
)

func TestParseMessageRejects(t *testing.T) {
	ok := peerFrame(1, `"x-1"`, `{"type":"telemetry","values":{"a":1}}`)
	if _, err := parseMessage(levelWS, []byte(ok)); err != nil {
		t.Fatalf("valid message: %v", err)
	}
	long := `"` + strings.Repeat("x", maxIDLen+1) + `"`
	cases := map[string]struct{ level, payload string }{
		"not json":              {levelWS, `{`},
		"two objects":           {levelWS, ok + ok},
		"no id":                 {levelWS, `{"ids":["x"],"committed":1,"seen":1,"frame":{}}`},
		"no ids":                {levelWS, `{"id":1,"ids":[],"committed":1,"seen":1,"frame":{}}`},
		"no times":              {levelWS, `{"id":1,"ids":["x"],"frame":{}}`},
		"reading without frame": {levelWS, `{"id":1,"ids":["x"],"committed":1,"seen":1}`},
		"reading with presence": {levelWS, `{"id":1,"ids":["x"],"committed":1,"seen":1,"frame":{},"presence":{}}`},
		"presence without":      {levelPresence, `{"id":1,"ids":["x"],"committed":1,"seen":1}`},
		"presence with two ids": {levelPresence, `{"id":1,"ids":["x","y"],"committed":1,"seen":1,"presence":{}}`},
		"presence with a frame": {levelPresence, `{"id":1,"ids":["x"],"committed":1,"seen":1,"presence":{},"frame":{}}`},
		"empty id":              {levelWS, `{"id":1,"ids":[""],"committed":1,"seen":1,"frame":{}}`},
		"long id":               {levelWS, `{"id":1,"ids":[` + long + `],"committed":1,"seen":1,"frame":{}}`},
		"id of the wrong type":  {levelWS, `{"id":"1","ids":["x"],"committed":1,"seen":1,"frame":{}}`},
		"negative commit time":  {levelWS, `{"id":1,"ids":["x"],"committed":-5,"seen":1,"frame":{}}`},
	}
	for name, c := range cases {
		if _, err := parseMessage(c.level, []byte(c.payload)); !errors.Is(err, errBadMessage) {
			t.Errorf("%s: err %v, want errBadMessage", name, err)
		}
	}
}

// What the forwarder publishes, the peers parse.
func TestWireMessageRoundTrip(t *testing.T) {
	ids := storage.NewIDCodec("abcd")
	m, err := wireMessage(telemetryEntry(9, "dev-1", 3, `{"type":"telemetry","values":{"a":1,"b":2,"c":3}}`), ids)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseMessage(levelWS, m.payload)
	if err != nil || m.device != "dev-1" || m.kind != outboxTelemetry || len(got.IDs) != 3 || got.IDs[2] != ids.Format(11) {
		t.Fatalf("%+v %+v: %v", m, got, err)
	}
	for name, body := range map[string][]byte{
		"empty":        nil,
		"no count":     {outboxTelemetry},
		"zero events":  {outboxTelemetry, 0, 1, 'd', '{', '}'},
		"short device": {outboxTelemetry, 1, 9, 'd'},
		"bad kind":     {'x', 1, 1, 'd', '{', '}'},
		"not json":     {outboxTelemetry, 1, 1, 'd', 'x', 'y'},
	} {
		if _, err := wireMessage(storage.OutboxEntry{ID: 1, Body: body}, ids); err == nil {
			t.Errorf("%s: read back", name)
		}
	}
}

func TestTopics(t *testing.T) {
	tp := newTopics("c1")
	cases := []struct {
		topic string
		want  peerTopic
		ok    bool
	}{
		{"telehub/c1/ws/n1/d1", peerTopic{levelWS, "n1", "d1"}, true},
		{"telehub/c1/presence/n1/d1", peerTopic{levelPresence, "n1", "d1"}, true},
		{"telehub/c1/presence/n1", peerTopic{levelPresence, "n1", ""}, true},
		{"telehub/c1/sync/n1", peerTopic{levelSync, "n1", ""}, true},
		{"telehub/c1/ws/n1", peerTopic{}, false},
		{"telehub/c1/sync/n1/d1", peerTopic{}, false},
		{"telehub/c1/commands/n1/d1", peerTopic{levelCommands, "n1", "d1"}, true},
		{"telehub/c1/commands/n1", peerTopic{}, false},
		{"telehub/c1/ws/n 1/d1", peerTopic{}, false},
		{"telehub/c1/ws/n1/", peerTopic{}, false},
		{"telehub/c2/ws/n1/d1", peerTopic{}, false},
	}
	for _, c := range cases {
		got, ok := tp.parse(c.topic)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("parse(%s) = %+v %v, want %+v %v", c.topic, got, ok, c.want, c.ok)
		}
	}
	if tp.ws("n1", "d1") != "telehub/c1/ws/n1/d1" || tp.presence("n1", "d1") != "telehub/c1/presence/n1/d1" {
		t.Fatal("topic builders")
	}
	if tp.commands("n1", "d1") != "telehub/c1/commands/n1/d1" {
		t.Fatal("commands topic")
	}
	if f := tp.filters("n1"); len(f) != 5 || f["telehub/c1/sync/n1"] != 1 || f["telehub/c1/ws/+/+"] != 1 || f["telehub/c1/commands/+/+"] != 1 {
		t.Fatalf("filters %v", f)
	}
}

func TestNewRejects(t *testing.T) {
	st := &fakeStore{}
	for name, cfg := range map[string]Config{
		"bad name": {Name: "a/b", Node: "n1", Store: st},
		"bad node": {Name: "c1", Node: "", Store: st},
		"no store": {Name: "c1", Node: "n1"},
		"negative": {Name: "c1", Node: "n1", Store: st, Retry: -1},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: err %v, want ErrInvalidConfig", name, err)
		}
	}
	c, err := New(Config{Name: "c1", Node: "n1", Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); !errors.Is(err, ErrNotAttached) {
		t.Fatalf("Start before Attach: %v", err)
	}
}

func FuzzParseMessage(f *testing.F) {
	f.Add(levelWS, []byte(peerFrame(1, `"x-1"`, `{"type":"telemetry","values":{"a":1}}`)))
	f.Add(levelPresence, []byte(peerPresenceMsg(2, true, "connect")))
	f.Fuzz(func(t *testing.T, level string, payload []byte) {
		m, err := parseMessage(level, payload)
		if err != nil {
			return
		}
		if m.ID == 0 || len(m.IDs) == 0 || len(m.IDs) > maxEventIDs {
			t.Fatalf("accepted %+v", m)
		}
		if o := m.origin("n2"); o.ID != m.ID || len(o.EventIDs) != len(m.IDs) {
			t.Fatalf("origin %+v of %+v", o, m)
		}
	})
}
