package auth

import "errors"

// Errors of the package. They are wrapped with context; test with
// errors.Is.
var (
	// ErrInvalidConfig: New was given an unusable Config (missing Path,
	// a bad device id or watcher entry, a duplicate).
	ErrInvalidConfig = errors.New("invalid auth configuration")
	// ErrBadToken: a token or "sha256:" hash in the configuration is
	// malformed or too short.
	ErrBadToken = errors.New("invalid token")
	// ErrBadName: a device id or watcher name does not follow the name
	// naming rule of internal/topic.
	ErrBadName = errors.New("invalid name")
	// ErrBadScope: a watcher credential without scopes, with too many, or
	// with a malformed topic filter.
	ErrBadScope = errors.New("invalid scope")
	// ErrNotFound: no credential of that device or watcher was issued.
	ErrNotFound = errors.New("no such credential")
	// ErrConfigured: the credential is defined in the configuration; it can
	// only be changed there.
	ErrConfigured = errors.New("credential defined in the configuration")
	// ErrBadFile: the credentials file cannot be read or does not hold
	// valid credentials.
	ErrBadFile = errors.New("invalid credentials file")
	// ErrPersist: the credentials file could not be written; the change
	// was not made.
	ErrPersist = errors.New("cannot write credentials file")
)
