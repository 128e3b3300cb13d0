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
	recs, err := a.read(r.URL.Query().Get("after"), matcher(filters), limit)
	if err != nil {
		a.readError(w, "after", err)
		return
	}
	a.writeEvents(w, r, recs, limit, "after")
}

// readError answers a failed read: 410 for a foreign, expired or ahead id, 400
// for a malformed one (the parameter named), else 500.
func (a *API) readError(w http.ResponseWriter, param string, err error) {
	var gap *storage.GapError
	switch {
	case errors.As(err, &gap):
		httpx.Error(w, http.StatusGone, httpx.CodeGone, gap.Error())
	case errors.Is(err, storage.ErrBadID):
		httpx.Error(w, http.StatusBadRequest, httpx.CodeBadRequest, fmt.Sprintf("%s: %v", param, err))
	default:
		a.internalError(w, "reading events", err)
	}
}

// writeEvents answers recs as the JSON array of events. A full page gets a
// Link to the next one, which continues from its last event with the
// cursor parameter (after or before).
func (a *API) writeEvents(w http.ResponseWriter, r *http.Request, recs []storage.Record, limit int, cursor string) {
	ids := a.cfg.Store.IDs()
	out := make([]event, len(recs))
	for i, rec := range recs {
		out[i] = event{ID: ids.FormatAt(rec.ID, rec.Time), Event: rec.Kind.String(), Data: rec.Data}
	}
	if len(out) == limit && limit > 0 {
		setNextLink(w, r, cursor, out[len(out)-1].ID)
	}
	httpx.JSON(w, http.StatusOK, out)
}

// startRetries bounds how often read starts again when retention trims
// the start of the log while a read without an after id runs.
const startRetries = 3

// read returns up to limit matching records after the event id from (""
// for the oldest retained), up to the last committed id. A malformed from
// wraps storage.ErrBadID; a foreign or expired one, or one beyond the last
// committed id (the data directory was restored from an older copy, and
// the ids after its newest are minted again), is a *storage.GapError.
// An id minted by a peer hub of the cluster reads this hub's events from
// its time minus the resume margin, as a watcher's resume does.
func (a *API) read(from string, match func(string) bool, limit int) ([]storage.Record, error) {
	for try := 0; ; try++ {
		last := a.cfg.Store.LastID()
		after, err := storage.ResumePoint(a.cfg.Store, from, last)
		var gap *storage.GapError
		if errors.As(err, &gap) && gap.Peer() {
			after, err = gap.After, nil
		}
		if err != nil {
			return nil, err
		}
		recs, _, err := storage.ReadAfter(a.cfg.Store, after, last, match, limit)
		if from == "" && errors.Is(err, storage.ErrExpired) && try < startRetries {
			continue // trimmed under a read from the start: start again
		}
		return recs, err
	}
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
