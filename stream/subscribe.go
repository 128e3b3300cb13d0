package stream

import (
	"fmt"

	"github.com/telehub/telehub/internal/topic"
)

// parseFilters parses topic filters, dropping repeats. None means "#".
func parseFilters(topics []string, limit int) ([]topic.Filter, error) {
	if len(topics) == 0 {
		topics = []string{"#"}
	}
	if len(topics) > limit {
		return nil, fmt.Errorf("%w: %d, at most %d", ErrTooManyFilters, len(topics), limit)
	}
	out := make([]topic.Filter, 0, len(topics))
	for _, t := range topics {
		f, err := topic.ParseFilter(t)
		if err != nil {
			return nil, err // names the filter
		}
		if !hasFilter(out, f.String()) {
			out = append(out, f)
		}
	}
	return out, nil
}

// hasFilter reports whether fs holds the filter s.
func hasFilter(fs []topic.Filter, s string) bool {
	for _, f := range fs {
		if f.String() == s {
			return true
		}
	}
	return false
}

// addFilters subscribes w to those of filters it does not hold yet and
// returns them. h.mu is held.
func (h *Hub) addFilters(w *watcher, filters []topic.Filter) []topic.Filter {
	var added []topic.Filter
	for _, f := range filters {
		if w.sub(f.String()) >= 0 {
			continue
		}
		s := h.index.add(w, f, f.Levels())
		s.since = h.last
		w.subs = append(w.subs, s)
		added = append(added, f)
	}
	return added
}

// sub returns the position of w's subscription to filter, or -1.
// Hub.mu is held.
func (w *watcher) sub(filter string) int {
	for i, s := range w.subs {
		if s.filter.String() == filter {
			return i
		}
	}
	return -1
}

// heldFilters returns the filters w holds, each with the id after which
// its events went out live. Hub.mu is held.
func (w *watcher) heldFilters() []liveFilter {
	fs := make([]liveFilter, len(w.subs))
	for i, s := range w.subs {
		fs[i] = liveFilter{filter: s.filter, since: s.since}
	}
	return fs
}

// subscribe adds filters to w and queues ack, then, when resume is set,
// a replay of the newly added filters from the event after id from. The
// replay skips the events that a filter w held before delivered live (those
// after it was added); earlier ones it replays.
func (h *Hub) subscribe(w *watcher, filters []topic.Filter, from string, resume bool, ack *frame) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if resume {
		h.awaitPublished(from)
	}
	if h.closed || w.gone {
		return ErrClosed
	}
	if len(w.subs)+newCount(w, filters) > h.cfg.MaxFilters {
		return fmt.Errorf("%w: at most %d", ErrTooManyFilters, h.cfg.MaxFilters)
	}
	held := w.heldFilters()
	added := h.addFilters(w, filters)
	w.pushControl(ack)
	if resume && len(added) > 0 {
		w.pushControl(&frame{replay: h.newReplay(from, added, held)})
	}
	return nil
}

// newCount is how many of filters w does not hold yet. Hub.mu is held.
func newCount(w *watcher, filters []topic.Filter) int {
	n := 0
	for _, f := range filters {
		if w.sub(f.String()) < 0 {
			n++
		}
	}
	return n
}

// unsubscribe removes filters from w and queues ack.
func (h *Hub) unsubscribe(w *watcher, filters []topic.Filter, ack *frame) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || w.gone {
		return ErrClosed
	}
	for _, f := range filters {
		if i := w.sub(f.String()); i >= 0 {
			h.index.remove(w.subs[i])
			w.subs = append(w.subs[:i], w.subs[i+1:]...)
		}
	}
	w.pushControl(ack)
	return nil
}

// control queues a frame for w alone, in order with its events.
func (h *Hub) control(w *watcher, f *frame) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !w.gone {
		w.pushControl(f)
	}
}
