package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// HashPrefix starts a token given as its hash: "sha256:" followed by the 64
// hex digits of the SHA-256 of the token.
const HashPrefix = "sha256:"

// Limits of plain tokens given in the configuration.
const (
	// MinTokenLen is the shortest plain token accepted, in bytes. Issued
	// tokens are 43 bytes.
	MinTokenLen = 16
	// MaxTokenLen is the longest token accepted, in bytes.
	MaxTokenLen = 1024
)

// tokenBytes is how many random bytes an issued token carries.
const tokenBytes = 32

// digest is the SHA-256 hash of a token, the only form in which telehub
// keeps one.
type digest [sha256.Size]byte

// hashToken returns the digest of token.
func hashToken(token string) digest { return sha256.Sum256([]byte(token)) }

// equal compares two digests in constant time.
func (d digest) equal(o digest) bool { return subtle.ConstantTimeCompare(d[:], o[:]) == 1 }

// String returns the digest as "sha256:<hex>", the form of the credentials
// file and the configuration.
func (d digest) String() string { return HashPrefix + hex.EncodeToString(d[:]) }

// newToken returns a fresh token read from src (crypto/rand.Reader) and
// its digest.
func newToken(src io.Reader) (string, digest, error) {
	var b [tokenBytes]byte
	if _, err := io.ReadFull(src, b[:]); err != nil {
		return "", digest{}, fmt.Errorf("random token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(b[:])
	return token, hashToken(token), nil
}

// ParseSecret parses a token as the configuration gives it: either
// "sha256:<64 hex digits>" (the hash of the token; `printf %s TOKEN |
// sha256sum` prints the digits) or the plain token, MinTokenLen to
// MaxTokenLen printable ASCII characters without spaces. It returns the
// "sha256:<hex>" form, the only one telehub keeps. Errors wrap ErrBadToken
// and never repeat the token.
func ParseSecret(s string) (string, error) {
	d, err := parseSecret(s)
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

func parseSecret(s string) (digest, error) {
	if rest, ok := strings.CutPrefix(s, HashPrefix); ok {
		return parseDigest(rest)
	}
	switch {
	case s == "":
		return digest{}, fmt.Errorf("%w: empty", ErrBadToken)
	case len(s) < MinTokenLen:
		return digest{}, fmt.Errorf("%w: %d bytes, want at least %d (or %s<hex> of its hash)", ErrBadToken, len(s), MinTokenLen, HashPrefix)
	case len(s) > MaxTokenLen:
		return digest{}, fmt.Errorf("%w: longer than %d bytes", ErrBadToken, MaxTokenLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return digest{}, fmt.Errorf("%w: byte %d is not printable ASCII (spaces are not allowed)", ErrBadToken, i)
		}
	}
	return hashToken(s), nil
}

// parseDigest parses the 64 hex digits of a SHA-256 hash.
func parseDigest(h string) (digest, error) {
	var d digest
	if len(h) != hex.EncodedLen(len(d)) {
		return d, fmt.Errorf("%w: %s wants %d hex digits, got %d", ErrBadToken, HashPrefix, hex.EncodedLen(len(d)), len(h))
	}
	if _, err := hex.Decode(d[:], []byte(h)); err != nil {
		return d, fmt.Errorf("%w: %s: not hex digits", ErrBadToken, HashPrefix)
	}
	return d, nil
}

// NewToken returns a fresh random token, like those the admin API issues,
// and its "sha256:<hex>" form for the configuration. src is usually
// crypto/rand.Reader.
func NewToken(src io.Reader) (token, hash string, err error) {
	token, d, err := newToken(src)
	if err != nil {
		return "", "", err
	}
	return token, d.String(), nil
}
