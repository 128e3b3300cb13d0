package bridge

import (
	"strconv"

	"github.com/telehub/telehub/internal/jsonx"
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
	return strconv.Quote(jsonx.Truncate(s, maxQuoted)) + "..."
}
