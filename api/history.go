package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/telehub/telehub/internal/topic"
	"github.com/telehub/telehub/storage"
)

// Values of the order parameter of GET /v1/events.
const (
	orderAsc  = "asc"
	orderDesc = "desc"
)

// checkOrder validates order and its cursor: after goes with the default
// ascending order, before with order=desc.
func checkOrder(q url.Values) error {
	switch order := q.Get("order"); order {
	case "", orderAsc:
		if q.Has("before") {
			return errors.New("before needs order=desc (newest first); with the default oldest-first order use after")
		}
	case orderDesc:
		if q.Has("after") {
			return errors.New("after goes with the default oldest-first order; with order=desc use before")
		}
	default:
		return fmt.Errorf("order %q: must be asc or desc", order)
	}
	return nil
}

// latestEvents answers GET /v1/events?order=desc: the newest matching
// events, before the before id when given.
func (a *API) latestEvents(w http.ResponseWriter, r *http.Request, filters []topic.Filter, limit int) {
	before, err := a.beforePoint(r.URL.Query().Get("before"))
	if err != nil {
		a.readError(w, "before", err)
		return
	}
	var recs []storage.Record
	if before > 0 {
		recs, err = a.readLatest(before, filters, limit)
	}
	if err != nil {
		a.internalError(w, "reading events", err)
		return
	}
	a.writeEvents(w, r, recs, limit, "before")
}

// beforePoint turns the before parameter into the sequence number events
// must be below: one past the last committed id when it is empty, 0 when
// nothing is. A malformed id wraps storage.ErrBadID, a foreign one is a
// *storage.GapError. An id older than every retained event is not an
// error: nothing before it is retained, and the answer is empty.
func (a *API) beforePoint(before string) (uint64, error) {
	last := a.cfg.Store.LastID()
	if before == "" {
		return last + 1, nil
	}
	seq, err := a.cfg.Store.IDs().Parse(before)
	switch {
	case errors.Is(err, storage.ErrForeignID):
		gap := &storage.GapError{ID: before, Foreign: true}
		gap.Oldest, gap.OldestSeq, _ = storage.FormatOldest(a.cfg.Store)
		return 0, gap
	case err != nil:
		return 0, err
	}
	return min(seq, last+1), nil
}

// readLatest returns up to limit matching records below before, newest
// first, calling the store until it has them or nothing older can match.
func (a *API) readLatest(before uint64, filters []topic.Filter, limit int) ([]storage.Record, error) {
	var out []storage.Record
	for len(out) < limit && before > 1 {
		recs, next, err := a.cfg.Store.Latest(before, filters, limit-len(out))
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
		if next == 0 || next >= before {
			break
		}
		before = next
	}
	return out, nil
}

// setNextLink sets the Link header to the request's URL with the cursor
// parameter moved to last: the next page.
func setNextLink(w http.ResponseWriter, r *http.Request, cursor, last string) {
	q := r.URL.Query()
	q.Del("token") // a browser's token stays out of headers
	q.Set(cursor, last)
	next := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	w.Header().Set("Link", "<"+next.String()+`>; rel="next"`)
}
