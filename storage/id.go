package storage

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Errors of ParseID.
var (
	// ErrBadID: the string is not an event id at all.
	ErrBadID = errors.New("malformed event id")
	// ErrForeignID: the id was minted by another store (another hub or data
	// directory).
	ErrForeignID = errors.New("event id from another store")
)

// idDigits is the width of the sequence part: fixed, so that ids of one
// store also sort as strings.
const idDigits = 16

// IDCodec turns event sequence numbers into the opaque ids clients see,
// "<store identity>-<16 hex digits>", and back. The identity is made when a
// data file is created, so ids from another hub or data directory are told
// apart.
type IDCodec struct {
	identity string
}

// NewIDCodec returns a codec for the store with the given identity (letters
// and digits only).
func NewIDCodec(identity string) IDCodec { return IDCodec{identity: identity} }

// Identity returns the store identity the codec was made with.
func (c IDCodec) Identity() string { return c.identity }

// Format returns the id string of sequence number seq.
func (c IDCodec) Format(seq uint64) string {
	return c.identity + "-" + fmt.Sprintf("%0*x", idDigits, seq)
}

// AppendFormat appends the id string of seq to b.
func (c IDCodec) AppendFormat(b []byte, seq uint64) []byte {
	b = append(b, c.identity...)
	b = append(b, '-')
	var tmp [idDigits]byte
	for i := idDigits - 1; i >= 0; i-- {
		tmp[i] = "0123456789abcdef"[seq&0xf]
		seq >>= 4
	}
	return append(b, tmp[:]...)
}

// Parse returns the sequence number of id: ErrBadID when it is not an id,
// ErrForeignID when another store minted it.
func (c IDCodec) Parse(id string) (uint64, error) {
	ident, hex, ok := strings.Cut(id, "-")
	if !ok || ident == "" || len(hex) != idDigits {
		return 0, fmt.Errorf("%w: %q", ErrBadID, id)
	}
	seq, err := strconv.ParseUint(hex, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrBadID, id)
	}
	if ident != c.identity {
		return 0, fmt.Errorf("%w: %q", ErrForeignID, id)
	}
	return seq, nil
}
