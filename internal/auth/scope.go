package auth

import (
	"strings"

	"github.com/telehub/telehub/internal/topic"
)

// MaxScopes is the most topic-filter scopes one watcher credential may
// carry.
const MaxScopes = 64

// AllowFilter reports whether a watcher holding scopes may subscribe to
// filter: whether one of the scopes covers it. No scopes allow nothing.
func AllowFilter(scopes []topic.Filter, filter topic.Filter) bool {
	for _, s := range scopes {
		if Covers(s, filter) {
			return true
		}
	}
	return false
}

// Covers reports whether filter is a subset of scope under MQTT wildcard
// rules: every topic that filter matches, scope matches too. So
// "telemetry/+/temp" is covered by "telemetry/#" and by "telemetry/+/+",
// but not by "telemetry/pump-7/#"; "a/#" (which matches "a") is not
// covered by "a/+/#" (which does not). As in MQTT, a scope whose first
// level is a wildcard does not cover topics starting with '$'. Zero
// Filters cover and are covered by nothing.
func Covers(scope, filter topic.Filter) bool {
	sRest, fRest := scope.String(), filter.String()
	if sRest == "" || fRest == "" {
		return false
	}
	if first, _, _ := strings.Cut(sRest, "/"); isWildcard(first) && fRest[0] == '$' {
		return false
	}
	if fRest == topic.MultiLevel {
		// Every topic has at least one level, so "#" and "+/#" match the
		// same topics.
		return sRest == topic.MultiLevel || sRest == topic.SingleLevel+"/"+topic.MultiLevel
	}
	fDone := false // the filter's levels are used up
	for {
		sl, sTail, sMore := strings.Cut(sRest, "/")
		if sl == topic.MultiLevel {
			return true // covers whatever follows, zero levels included
		}
		if fDone {
			return false // filter topics end here; scope wants more levels
		}
		fl, fTail, fMore := strings.Cut(fRest, "/")
		if !levelCovers(sl, fl) {
			return false
		}
		if !sMore {
			return !fMore // both end here, or the filter has levels to spare
		}
		sRest, fRest, fDone = sTail, fTail, !fMore
	}
}

// levelCovers reports whether scope level sl matches every topic level
// that filter level fl matches; '#' levels are handled by Covers.
func levelCovers(sl, fl string) bool {
	switch {
	case fl == topic.MultiLevel:
		return false
	case sl == topic.SingleLevel:
		return true
	}
	return sl == fl // fl '+' is covered only by a '+' scope level
}

func isWildcard(level string) bool { return level == topic.SingleLevel || level == topic.MultiLevel }
