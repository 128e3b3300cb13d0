package stream

import "time"

// publishWait bounds how long a watcher resuming from an event that is
// committed but not yet published waits for its publication.
const publishWait = time.Second

// awaitPublished waits, with h.mu held (released while it waits), until
// the event named by from is published, when the log has committed it but
// the hub has not published it yet: a client that read the id from
// GET /v1/events can resume from it before the commit's fan-out ran.
// Without the wait the watcher would subscribe at an earlier point, and
// its replay would take the id for one beyond the newest event (a reset).
// It gives up after publishWait, and when the hub closes.
func (h *Hub) awaitPublished(from string) {
	if from == "" {
		return
	}
	seq, err := h.ids.Parse(from)
	if err != nil || seq <= h.last || seq > h.cfg.Log.LastID() {
		return
	}
	expired := false
	t := time.AfterFunc(publishWait, func() {
		h.mu.Lock()
		expired = true
		h.mu.Unlock()
		h.published.Broadcast()
	})
	defer t.Stop()
	h.awaiting++
	for h.last < seq && !h.closed && !expired {
		h.published.Wait()
	}
	h.awaiting--
}
