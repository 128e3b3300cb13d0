package topic

import (
	"github.com/telehub/telehub/internal/jsonx"
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
		return errorf("device id %s: invalid name (%s)", jsonx.Quote(id), NameRule)
	}
	return nil
}

// ValidMetric returns nil when name is a valid metric name (the same rule
// as device ids), else an error matching ErrInvalid whose message names the
// metric.
func ValidMetric(name string) error {
	if !ValidName(name) {
		return errorf("metric %s: invalid name (%s)", jsonx.Quote(name), NameRule)
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
