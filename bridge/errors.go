package bridge

import "fmt"

// Wire error codes, sent to devices in error answers and recorded in
// errors/{device} events.
const (
	// CodeBadRequest: the payload is not valid (bad JSON, name, value, ts,
	// seq, SenML record). The message names the part that is wrong.
	CodeBadRequest = "bad_request"
	// CodePayloadTooLarge: the payload is over the configured max payload.
	CodePayloadTooLarge = "payload_too_large"
	// CodeForbidden: the device may not publish there.
	CodeForbidden = "forbidden"
	// CodeRateLimited: the device sends faster than its rate limit.
	CodeRateLimited = "rate_limited"
	// CodeInternal: the hub could not store an otherwise valid payload.
	CodeInternal = "internal"
	// CodeStorageFull: the hub is out of storage space and stored nothing
	// of the payload; the device should send it again later.
	CodeStorageFull = "storage_full"
)

// Error is a rejection of a device payload. Code is one of the Code…
// constants; Message says what was wrong and names the offending part.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with CodeBadRequest and a formatted message.
func Errorf(format string, args ...any) *Error {
	return &Error{Code: CodeBadRequest, Message: fmt.Sprintf(format, args...)}
}
