package bridge

import (
	"strconv"
	"unicode/utf8"
)

// maxNameLen is the longest device id or metric name (SPEC §2).
const maxNameLen = 64

// nameRule says what a valid name looks like, for error messages.
const nameRule = "want 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit"

// ValidDeviceID returns nil when id is a valid device id (SPEC §2:
// ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$), else an *Error with CodeBadRequest
// whose message names the id.
func ValidDeviceID(id string) error {
	if !validName(id) {
		return Errorf("device id %s: invalid name (%s)", quote(id), nameRule)
	}
	return nil
}

// ValidMetric returns nil when name is a valid metric name (the same rule as
// device ids), else an *Error with CodeBadRequest whose message names the
// metric.
func ValidMetric(name string) error {
	if !validName(name) {
		return Errorf("metric %s: invalid name (%s)", quote(name), nameRule)
	}
	return nil
}

// validName reports whether s matches ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$.
func validName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen || !isAlnum(s[0]) {
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

// maxQuoted is how much of a device-supplied string an error message shows,
// so that a hostile payload cannot make error events large.
const maxQuoted = 80

// quote returns s quoted for an error message, cut to maxQuoted bytes (at a
// character boundary) with "..." appended when it was longer.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	return strconv.Quote(truncate(s, maxQuoted)) + "..."
}

// truncate returns s cut to at most n bytes without splitting a valid UTF-8
// sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for i := 0; i < utf8.UTFMax && cut > 0 && !utf8.RuneStart(s[cut]); i++ {
		cut--
	}
	if !utf8.RuneStart(s[cut]) {
		cut = n // not UTF-8 there: a plain byte cut is as good as any
	}
	return s[:cut]
}
