package bridge

import (
	"strconv"
	"unicode/utf8"

	"github.com/telehub/telehub/internal/topic"
)

// badRequest returns err, a name or filter refused by the topic package, as
// an *Error with CodeBadRequest and the same message.
func badRequest(err error) *Error {
	return &Error{Code: CodeBadRequest, Message: err.Error()}
}

// validDeviceID is topic.ValidDeviceID with an *Error.
func validDeviceID(id string) error {
	if err := topic.ValidDeviceID(id); err != nil {
		return badRequest(err)
	}
	return nil
}

// validMetric is topic.ValidMetric with an *Error.
func validMetric(name string) error {
	if err := topic.ValidMetric(name); err != nil {
		return badRequest(err)
	}
	return nil
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
