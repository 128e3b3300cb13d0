package bridge

import "github.com/telehub/telehub/internal/topic"

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
