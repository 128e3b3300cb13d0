package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/telehub/telehub/internal/auth"
	"github.com/telehub/telehub/internal/httpx"
	"github.com/telehub/telehub/internal/topic"
)

// access is what a request may read: everything (admin token, or no
// credentials at all), or what a watcher's scopes cover.
type access struct {
	all    bool
	scopes []topic.Filter
}

// accessKey keys the request's access in its context.
type accessKey struct{}

// accessOf returns the access reader stored in the request's context;
// all when none was (no Auth, no credentials, or the admin token).
func accessOf(r *http.Request) access {
	if acc, ok := r.Context().Value(accessKey{}).(access); ok {
		return acc
	}
	return access{all: true}
}

// allowFilter reports whether the request may read what filter matches.
func (acc access) allowFilter(f topic.Filter) bool {
	return acc.all || auth.AllowFilter(acc.scopes, f)
}

// deniedFilter returns the first of the valid topic filters raw ("#" when
// there are none) the request may not read, and whether there is one.
func (acc access) deniedFilter(raw []string) (string, bool) {
	if acc.all {
		return "", false
	}
	if len(raw) == 0 {
		raw = []string{topic.MultiLevel}
	}
	for _, s := range raw {
		if f, err := topic.ParseFilter(s); err != nil || !acc.allowFilter(f) {
			return s, true
		}
	}
	return "", false
}

// forbidden answers 403 for a filter outside the watcher's scopes.
func (acc access) forbidden(w http.ResponseWriter, filter string) {
	httpx.Forbidden(w, fmt.Sprintf(
		"topic %q is outside this watcher's scopes %s: ask for topics within them", filter, strings.Join(filterStrings(acc.scopes), " ")))
}

func filterStrings(fs []topic.Filter) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.String()
	}
	return out
}

// allowTopic reports whether the request may read events of topic.
func (acc access) allowTopic(topic string) bool {
	if acc.all {
		return true
	}
	for _, s := range acc.scopes {
		if s.Match(topic) {
			return true
		}
	}
	return false
}

// reader guards a read endpoint: while credentials exist, the request
// needs the admin token or a watcher token (Authorization: Bearer, or
// ?token= for browsers), else 401. The handler finds the access granted
// with accessOf.
func (a *API) reader(h http.HandlerFunc) http.HandlerFunc {
	if a.cfg.Auth == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if !a.cfg.Auth.Enabled() {
			h(w, r)
			return
		}
		token := httpx.RequestToken(r)
		if a.cfg.Auth.Admin(token) {
			h(w, r)
			return
		}
		scopes, ok := a.cfg.Auth.Watcher(token)
		if !ok {
			httpx.Unauthorized(w, token, "a watcher or admin token is required")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), accessKey{}, access{scopes: scopes})))
	}
}

// seesDevice reports whether the request may see device id at all: a
// watcher sees a device when one of its scopes can match a topic of it,
// telemetry/{id}/{metric}, presence/{id} or errors/{id}.
func (acc access) seesDevice(id string) bool {
	if acc.all {
		return true
	}
	topics := [][]string{{"telemetry", id, anyLevel}, {"presence", id}, {"errors", id}}
	for _, s := range acc.scopes {
		levels := s.Levels()
		for _, t := range topics {
			if mayMatch(levels, t) {
				return true
			}
		}
	}
	return false
}

// anyLevel stands for any valid name in a topic given to mayMatch.
const anyLevel = "\x00"

// mayMatch reports whether filter levels can match a topic of the given
// levels, where anyLevel is any valid name.
func mayMatch(filter, levels []string) bool {
	for i, l := range filter {
		switch {
		case l == topic.MultiLevel:
			return true
		case i >= len(levels):
			return false
		case l == topic.SingleLevel:
		case levels[i] == anyLevel:
			if !topic.ValidName(l) {
				return false
			}
		case l != levels[i]:
			return false
		}
	}
	return len(filter) == len(levels)
}
