package topic

import (
	"strconv"
	"unicode/utf8"
)

// MaxNameLen is the longest device id or metric name, in bytes.
const MaxNameLen = 64

// NameRule says what a valid name looks like, for error messages.
const NameRule = "want 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit"

// ValidDeviceID returns nil when id is a valid device id
// (^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$), else an error matching ErrInvalid
// whose message names the id.
func ValidDeviceID(id string) error {
	if !ValidName(id) {
		return errorf("device id %s: invalid name (%s)", quote(id), NameRule)
	}
	return nil
}

// ValidMetric returns nil when name is a valid metric name (the same rule
// as device ids), else an error matching ErrInvalid whose message names the
// metric.
func ValidMetric(name string) error {
	if !ValidName(name) {
		return errorf("metric %s: invalid name (%s)", quote(name), NameRule)
	}
	return nil
}

// ValidName reports whether s matches ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$,
// the rule of device ids and metric names.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// maxQuoted is how much of a rejected name or filter an error message
// shows, so that a hostile value cannot make error messages large.
const maxQuoted = 80

// quote returns s quoted for an error message, cut to maxQuoted bytes (at
// a character boundary) with "..." appended when it was longer.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for i := 0; i < utf8.UTFMax && cut > 0 && !utf8.RuneStart(s[cut]); i++ {
		cut--
	}
	if !utf8.RuneStart(s[cut]) {
		cut = maxQuoted // not UTF-8 there: a plain byte cut is as good as any
	}
	return strconv.Quote(s[:cut]) + "..."
}
