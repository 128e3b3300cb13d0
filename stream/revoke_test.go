package stream

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/telehub/telehub/internal/topic"
)

// tokens is an Authorize over a set of valid bearer tokens that a test
// revokes.
type tokens struct {
	mu    sync.Mutex
	valid map[string]bool
}

func newTokens(names ...string) *tokens {
	t := &tokens{valid: map[string]bool{}}
	for _, n := range names {
		t.valid[n] = true
	}
	return t
}

func (t *tokens) revoke(name string) {
	t.mu.Lock()
	delete(t.valid, name)
	t.mu.Unlock()
}

func (t *tokens) authorize(r *http.Request) (func(topic.Filter) bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.valid[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")] {
		return nil, errors.New("missing or invalid watcher token")
	}
	return nil, nil
}

func bearerOf(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

func TestRecheckEndsRevokedWatchers(t *testing.T) {
	tk := newTokens("a", "b")
	th := newTestHub(t, Config{Authorize: tk.authorize})
	sseA := openSSE(t, th, "", bearerOf("a"))
	sseB := openSSE(t, th, "", bearerOf("b"))
	wsA := dialWS(t, th, bearerOf("a"))
	wsA.subscribe("", "#")
	wsB := dialWS(t, th, bearerOf("b"))
	wsB.subscribe("", "#")
	waitFor(t, "watchers", func() bool { return th.Watchers() == 4 })

	if n := th.Recheck(); n != 0 {
		t.Fatalf("Recheck with nothing revoked ended %d watchers", n)
	}
	tk.revoke("a")
	if n := th.Recheck(); n != 2 {
		t.Fatalf("Recheck ended %d watchers, want 2", n)
	}
	if ce := wsA.waitClosed(); ce == nil || ce.Code != closeRevoked || string(ce.Reason) != "revoked" {
		t.Errorf("revoked ws watcher closed with %+v, want 4003 revoked", ce)
	}
	for {
		ev, err := sseA.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("revoked sse stream: %v, want a clean end", err)
		}
		if ev.comment == "" {
			t.Fatalf("revoked sse stream sent %+v", ev)
		}
	}
	waitFor(t, "revoked watchers gone", func() bool { return th.Watchers() == 2 })

	recs := commit(th.Hub, th.log, "telemetry/d1/temp")
	wantEvent(t, th.log.ids, wsB.next(), recs[0])
	if ev := sseB.nextEvent(); ev.id != th.log.ids.Format(recs[0].ID) {
		t.Errorf("sse watcher b got %+v, want event %d", ev, recs[0].ID)
	}
}

func TestRevokedWSWatcherSubscribeRefused(t *testing.T) {
	tk := newTokens("a")
	th := newTestHub(t, Config{Authorize: tk.authorize})
	c := dialWS(t, th, bearerOf("a"))
	c.subscribe("", "telemetry/#")
	tk.revoke("a") // no Recheck yet: the next subscribe alone must see it
	c.send(map[string]any{"op": "subscribe", "topics": []string{"presence/#"}})
	if m := c.next(); m.Op != "error" || !strings.Contains(m.Message, "revoked") {
		t.Fatalf("got %+v, want an error saying the credential was revoked", m)
	}
}
