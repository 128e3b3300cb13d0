package topic

import (
	"errors"
	"fmt"
)

// ErrInvalid is matched (errors.Is) by every error of this package: a name
// or a filter that breaks telehub's rules. The error's message names the
// offending value and says what is wrong.
var ErrInvalid = errors.New("invalid name or topic filter")

// invalidError is an ErrInvalid with its own message.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }

// Is reports whether target is ErrInvalid.
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

// errorf returns an error matching ErrInvalid with a formatted message.
func errorf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}
