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
	match, err := parseFilters(q["topic"])
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
	if err != nil {
		httpx.Error(w, http.StatusBadRequest, httpx.CodeBadRequest, err.Error())
		return
	}
	recs, err := a.read(q.Get("after"), match, limit)
	var gap *storage.GapError
	switch {
	case errors.As(err, &gap):
		httpx.Error(w, http.StatusGone, httpx.CodeGone, gap.Error())
		return
	case errors.Is(err, storage.ErrBadID):
		httpx.Error(w, http.StatusBadRequest, httpx.CodeBadRequest, fmt.Sprintf("after: %v", err))
		return
	case err != nil:
		a.internalError(w, "reading events", err)
		return
	}
	ids := a.cfg.Store.IDs()
	out := make([]event, len(recs))
	for i, rec := range recs {
		out[i] = event{ID: ids.Format(rec.ID), Event: rec.Kind.String(), Data: rec.Data}
	}
	httpx.JSON(w, http.StatusOK, out)
}

// startRetries bounds how often read starts again when retention trims
// the start of the log while a read without an after id runs.
const startRetries = 3

// read returns up to limit matching records after the event id from (""
// for the oldest retained), up to the last committed id. A malformed from
// wraps storage.ErrBadID; a foreign or expired one is a *storage.GapError.
func (a *API) read(from string, match func(string) bool, limit int) ([]storage.Record, error) {
	for try := 0; ; try++ {
		after, err := storage.ResumePoint(a.cfg.Store, from)
		if err != nil {
			return nil, err
		}
		recs, _, err := storage.ReadAfter(a.cfg.Store, after, a.cfg.Store.LastID(), match, limit)
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

// parseFilters parses topic filters; none means "#". The result matches a
// topic when any filter does.
func parseFilters(raw []string) (func(string) bool, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	filters := make([]topic.Filter, 0, len(raw))
	for _, s := range raw {
		f, err := topic.ParseFilter(s)
		if err != nil {
			return nil, fmt.Errorf("topic %q: %v", s, err)
		}
		filters = append(filters, f)
	}
	return func(topic string) bool {
		for _, f := range filters {
			if f.Match(topic) {
				return true
			}
		}
		return false
	}, nil
}
