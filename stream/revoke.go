package stream

import (
	"context"
	"net/http"
	"sync"
)

// closeRevoked is the WebSocket close code of a watcher whose credential
// was revoked.
const closeRevoked = 4003

// revocation ends a watcher's stream once its credential no longer holds.
type revocation struct {
	once sync.Once
	ch   chan struct{} // closed when the credential was found revoked
}

func newRevocation() *revocation { return &revocation{ch: make(chan struct{})} }

func (r *revocation) revoke() { r.once.Do(func() { close(r.ch) }) }

// recheckOf returns a check that runs Config.Authorize again on a copy of
// r; nil without Authorize.
func (h *Hub) recheckOf(r *http.Request) func() bool {
	if h.cfg.Authorize == nil {
		return nil
	}
	req := r.Clone(context.Background())
	return func() bool {
		_, err := h.cfg.Authorize(req)
		return err == nil
	}
}

// Recheck runs Config.Authorize again for every connected watcher and
// ends the stream of each one it now refuses: an SSE stream ends, a
// WebSocket watcher is closed with code 4003 "revoked". The admin API
// calls it after revoking a watcher credential. It returns how many
// watchers it ended.
func (h *Hub) Recheck() int {
	h.mu.Lock()
	ws := make([]*watcher, 0, len(h.watchers))
	for w := range h.watchers {
		ws = append(ws, w)
	}
	h.mu.Unlock()
	n := 0
	for _, w := range ws {
		if w.valid != nil && !w.valid() {
			w.revoked.revoke()
			n++
		}
	}
	return n
}
