package stream

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/telehub/telehub/internal/topic"
)

// telemetryOnly admits requests whose Authorization is "Bearer good" to
// filters under telemetry/, and refuses any other request.
func telemetryOnly(r *http.Request) (func(topic.Filter) bool, error) {
	if r.Header.Get("Authorization") != "Bearer good" {
		return nil, errors.New("missing or invalid watcher token")
	}
	return func(f topic.Filter) bool { return strings.HasPrefix(f.String(), "telemetry/") }, nil
}

var goodToken = http.Header{"Authorization": {"Bearer good"}}

func TestSSEAuthorize(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		topics []string
		status int
		code   string
	}{
		{"no token", nil, []string{"telemetry/#"}, http.StatusUnauthorized, "unauthorized"},
		{"wrong token", http.Header{"Authorization": {"Bearer bad"}}, []string{"telemetry/#"}, http.StatusUnauthorized, "unauthorized"},
		{"refused before a bad filter", nil, []string{"a/#/b"}, http.StatusUnauthorized, "unauthorized"},
		{"bad filter", goodToken, []string{"a/#/b"}, http.StatusBadRequest, "bad_request"},
		{"denied filter", goodToken, []string{"presence/#"}, http.StatusForbidden, "forbidden"},
		{"one denied among allowed", goodToken, []string{"telemetry/#", "errors/#"}, http.StatusForbidden, "forbidden"},
		{"default # denied", goodToken, nil, http.StatusForbidden, "forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := newTestHub(t, Config{Authorize: telemetryOnly})
			_, resp := dialSSE(t, th, url.Values{"topic": tt.topics}.Encode(), tt.header)
			checkErrorResponse(t, resp, tt.status, tt.code)
			if tt.status == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("401 without a Bearer challenge: %q", resp.Header.Get("WWW-Authenticate"))
			}
			if n := th.Watchers(); n != 0 {
				t.Errorf("Watchers = %d", n)
			}
		})
	}
}

func TestSSEAuthorizeAllowed(t *testing.T) {
	th := newTestHub(t, Config{Authorize: telemetryOnly})
	s := openSSE(t, th, "topic=telemetry/%2B/temp", goodToken)
	waitFor(t, "registration", func() bool { return th.Watchers() == 1 })
	recs := commit(th.Hub, th.log, "presence/d1", "telemetry/d1/temp")
	if ev := s.nextEvent(); ev.id != th.log.ids.Format(recs[1].ID) {
		t.Fatalf("got %+v, want the telemetry event", ev)
	}
}

func TestWSAuthorizeRefusedBeforeUpgrade(t *testing.T) {
	th := newTestHub(t, Config{Authorize: telemetryOnly})
	req, err := http.NewRequest(http.MethodGet, th.srv.URL+"/v1/stream/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp, err := th.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	checkErrorResponse(t, resp, http.StatusUnauthorized, "unauthorized")
	if n := th.Watchers(); n != 0 {
		t.Errorf("Watchers = %d", n)
	}
}

func TestWSAuthorizeSubscribe(t *testing.T) {
	th := newTestHub(t, Config{Authorize: telemetryOnly})
	c := dialWS(t, th, goodToken)
	c.send(map[string]any{"op": "subscribe", "topics": []string{"telemetry/+/temp", "presence/#"}})
	if m := c.next(); m.Op != "error" || !strings.Contains(m.Message, `"presence/#"`) {
		t.Fatalf("got %+v, want an error naming presence/#", m)
	}
	c.send(map[string]any{"op": "subscribe", "topics": []string{"#"}})
	if m := c.next(); m.Op != "error" {
		t.Fatalf("got %+v, want an error for #", m)
	}
	c.subscribe("", "telemetry/+/temp") // the connection stays usable
	recs := commit(th.Hub, th.log, "presence/d1", "telemetry/d1/hum", "telemetry/d1/temp")
	wantEvent(t, th.log.ids, c.next(), recs[2])
	c.send(map[string]any{"op": "unsubscribe", "topics": []string{"presence/#"}})
	if m := c.next(); m.Op != "unsubscribed" {
		t.Fatalf("got %+v, want unsubscribed: unsubscribing needs no permission", m)
	}
}
