package topic

import (
	"strings"
	"unicode/utf8"

	"github.com/telehub/telehub/internal/jsonx"
)

// MaxFilterLen is the longest topic filter accepted, in bytes.
const MaxFilterLen = 256

// Wildcard levels of topic filters.
const (
	SingleLevel = "+"
	MultiLevel  = "#"
)

// Filter is a parsed MQTT topic filter, as watchers and scopes give them:
// levels separated by '/', where a level "+" matches exactly one topic level and a last level
// "#" matches any number of levels, zero included. The zero Filter matches
// nothing. A Filter is an immutable value, safe to share.
type Filter struct {
	s      string
	levels []string
}

// ParseFilter parses a topic filter. It must be non-empty, at most
// MaxFilterLen bytes of valid UTF-8 without NUL, with '+' and '#' only as
// whole levels and '#' only as the last level; empty levels are allowed, as
// in MQTT. Errors match ErrInvalid and name the filter.
func ParseFilter(s string) (Filter, error) {
	switch {
	case s == "":
		return Filter{}, errorf("filter: empty")
	case len(s) > MaxFilterLen:
		return Filter{}, errorf("filter %s: longer than %d bytes", jsonx.Quote(s), MaxFilterLen)
	case !utf8.ValidString(s):
		return Filter{}, errorf("filter %s: invalid UTF-8", jsonx.Quote(s))
	case strings.IndexByte(s, 0) >= 0:
		return Filter{}, errorf("filter %s: contains NUL", jsonx.Quote(s))
	}
	levels := strings.Split(s, "/")
	for i, l := range levels {
		switch {
		case l == MultiLevel && i != len(levels)-1:
			return Filter{}, errorf("filter %s: '#' must be the last level", jsonx.Quote(s))
		case l != MultiLevel && l != SingleLevel && strings.ContainsAny(l, "+#"):
			return Filter{}, errorf("filter %s: '+' and '#' must be a whole level", jsonx.Quote(s))
		}
	}
	return Filter{s: s, levels: levels}, nil
}

// String returns the filter as it was parsed.
func (f Filter) String() string { return f.s }

// Levels returns a copy of the filter's levels, for subscription indexes.
func (f Filter) Levels() []string {
	return append([]string(nil), f.levels...)
}

// IsWildcard reports whether the filter has a '+' or '#' level.
func (f Filter) IsWildcard() bool {
	return strings.ContainsAny(f.s, "+#")
}

// Match reports whether topic matches the filter, as in MQTT: "+" matches
// exactly one level, "#" any number of levels including none ("a/#" matches
// "a"), and a wildcard first level does not match topics starting with '$'.
func (f Filter) Match(topic string) bool {
	if len(f.levels) == 0 {
		return false
	}
	if first := f.levels[0]; len(topic) > 0 && topic[0] == '$' && (first == SingleLevel || first == MultiLevel) {
		return false
	}
	rest := topic
	last := len(f.levels) - 1
	for i, l := range f.levels {
		if l == MultiLevel {
			return true
		}
		level, tail, more := strings.Cut(rest, "/")
		if l != SingleLevel && l != level {
			return false
		}
		if !more {
			// the topic ends here: so must the filter, or go on with a '#'
			return i == last || i == last-1 && f.levels[last] == MultiLevel
		}
		rest = tail
	}
	return false // the topic has more levels than the filter
}
