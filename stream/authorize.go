package stream

import (
	"fmt"
	"net/http"

	"github.com/telehub/telehub/internal/httpx"
	"github.com/telehub/telehub/internal/topic"
)

// authorize runs Config.Authorize on a watcher's request. When it refuses,
// authorize answers 401 and returns false. A nil allow admits every filter.
func (h *Hub) authorize(w http.ResponseWriter, r *http.Request) (allow func(topic.Filter) bool, ok bool) {
	if h.cfg.Authorize == nil {
		return nil, true
	}
	allow, err := h.cfg.Authorize(r)
	if err != nil {
		httpx.Unauthorized(w, httpx.RequestToken(r), err.Error())
		return nil, false
	}
	return allow, true
}

// allowed returns an error wrapping ErrForbidden naming the first of
// filters that allow refuses; nil when allow is nil or admits them all.
func allowed(allow func(topic.Filter) bool, filters []topic.Filter) error {
	if allow == nil {
		return nil
	}
	for _, f := range filters {
		if !allow(f) {
			return fmt.Errorf("%w: %q is outside what this watcher may watch", ErrForbidden, f.String())
		}
	}
	return nil
}
