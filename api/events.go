package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/telehub/telehub/internal/httpx"
	"github.com/telehub/telehub/internal/topic"
	"github.com/telehub/telehub/storage"
)

// Limits of GET /v1/events.
const (
	defaultLimit = 100
	maxLimit     = 10_000
)

// event is one element of GET /v1/events: the same object a WebSocket
// watcher gets, without the op.
type event struct {
	ID    string          `json:"id"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

func (a *API) listEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if problem := httpx.TopicQueryProblem(q["topic"]); problem != "" {
		httpx.Error(w, http.StatusBadRequest, httpx.CodeBadRequest, problem)
		return
	}
	filters, err := parseFilters(q["topic"])
	if err != nil {
		httpx.Error(w, http.StatusBadRequest, httpx.CodeBadRequest, err.Error())
		return
	}
	if acc := accessOf(r); !acc.all {
		if denied, ok := acc.deniedFilter(q["topic"]); ok {
			acc.forbidden(w, denied)
			return
		}
	}
	limit, err := parseLimit(q.Get("limit"))
	if err == nil {
		err = checkOrder(q)
	}
	if err != nil {
		httpx.Error(w, http.StatusBadRequest, httpx.CodeBadRequest, err.Error())
		return
	}
	if q.Get("order") == orderDesc {
		a.latestEvents(w, r, filters, limit)
		return
	}
	a.oldestEvents(w, r, filters, limit)
}

// oldestEvents answers GET /v1/events in ascending order: the retained
// events after the after id, oldest first.
func (a *API) oldestEvents(w http.ResponseWriter, r *http.Request, filters []topic.Filter, limit int) {
	q := r.URL.Query()
	after, status, err := a.resumePoint(q.Get("after"))
	if err != nil {
		a.idError(w, status, err)
		return
	}
	recs, err := a.read(after, matcher(filters), limit)
	if err != nil {
		a.internalError(w, "reading events", err)
		return
	}
	// Retention may have trimmed past the resume point while the log was
	// read; the scan may then have skipped events.
	if _, status, err := a.resumePoint(q.Get("after")); err != nil {
		httpx.Error(w, status, httpx.CodeGone, err.Error())
		return
	}
	a.writeEvents(w, r, recs, limit, "after")
}

// idError answers a bad after or before id: 400, or 410 for a foreign or
// expired one.
func (a *API) idError(w http.ResponseWriter, status int, err error) {
	code := httpx.CodeBadRequest
	if status == http.StatusGone {
		code = httpx.CodeGone
	}
	httpx.Error(w, status, code, err.Error())
}

// writeEvents answers recs as the JSON array of events. A full page gets a
// Link to the next one, which continues from its last event with the
// cursor parameter (after or before).
func (a *API) writeEvents(w http.ResponseWriter, r *http.Request, recs []storage.Record, limit int, cursor string) {
	ids := a.cfg.Store.IDs()
	out := make([]event, len(recs))
	for i, rec := range recs {
		out[i] = event{ID: ids.Format(rec.ID), Event: rec.Kind.String(), Data: rec.Data}
	}
	if len(out) == limit && limit > 0 {
		setNextLink(w, r, cursor, out[len(out)-1].ID)
	}
	httpx.JSON(w, http.StatusOK, out)
}

// read returns up to limit matching records after the given id, scanning
// the log in bounded chunks up to the last committed id.
func (a *API) read(after uint64, match func(string) bool, limit int) ([]storage.Record, error) {
	upTo := a.cfg.Store.LastID()
	var out []storage.Record
	for len(out) < limit && after < upTo {
		recs, next, err := a.cfg.Store.Scan(after, upTo, match, limit-len(out))
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
		if next <= after {
			break
		}
		after = next
	}
	return out, nil
}

// resumePoint turns the after parameter into a sequence number. A
// malformed id is a 400; a foreign or expired one a 410 naming the oldest
// retained id.
func (a *API) resumePoint(after string) (uint64, int, error) {
	if after == "" {
		return 0, 0, nil
	}
	ids := a.cfg.Store.IDs()
	seq, err := ids.Parse(after)
	switch {
	case errors.Is(err, storage.ErrForeignID):
		return 0, http.StatusGone, fmt.Errorf("event id %q was minted by another hub or data directory; oldest retained id is %q", after, a.oldest())
	case err != nil:
		return 0, http.StatusBadRequest, fmt.Errorf("after: %v", err)
	}
	oldest, ok := a.cfg.Store.OldestID()
	if (ok && seq+1 < oldest) || (!ok && seq < a.cfg.Store.LastID()) {
		return 0, http.StatusGone, fmt.Errorf("event id %q is no longer retained; oldest retained id is %q", after, a.oldest())
	}
	return seq, 0, nil
}

func (a *API) oldest() string {
	if id, ok := a.cfg.Store.OldestID(); ok {
		return a.cfg.Store.IDs().Format(id)
	}
	return ""
}

func parseLimit(s string) (int, error) {
	if s == "" {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("limit %q: must be a whole number from 1 to %d", s, maxLimit)
	}
	return min(n, maxLimit), nil
}

// parseFilters parses topic filters; none means every topic.
func parseFilters(raw []string) ([]topic.Filter, error) {
	filters := make([]topic.Filter, 0, len(raw))
	for _, s := range raw {
		f, err := topic.ParseFilter(s)
		if err != nil {
			return nil, fmt.Errorf("topic %q: %v", s, err)
		}
		filters = append(filters, f)
	}
	return filters, nil
}

// matcher returns a function matching a topic when any of filters does;
// nil (every topic) when there are none.
func matcher(filters []topic.Filter) func(string) bool {
	if len(filters) == 0 {
		return nil
	}
	return func(t string) bool {
		for _, f := range filters {
			if f.Match(t) {
				return true
			}
		}
		return false
	}
}
