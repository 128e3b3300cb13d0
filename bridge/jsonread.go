package bridge

import (
	"bytes"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds the nesting of JSON values the reader skips over (unknown
// fields of frames and SenML records).
const maxDepth = 32

// reader is a small JSON scanner over one payload. It validates as it goes
// (RFC 8259 grammar, UTF-8 strings) and hands out the bytes of keys and
// values without building a generic tree, so that the parsers decide what
// each value must be and name the part that is wrong.
type reader struct {
	b   []byte
	pos int
}

// syntaxErr returns the *Error for malformed JSON at the current offset.
func (r *reader) syntaxErr(what string) *Error {
	return Errorf("invalid JSON at offset %d: %s", r.pos, what)
}

// unexpected returns the *Error for a byte that is not what the grammar
// wants at the current offset.
func (r *reader) unexpected(want string) *Error {
	if r.pos >= len(r.b) {
		return r.syntaxErr("unexpected end of input, want " + want)
	}
	return r.syntaxErr("unexpected " + strconv.QuoteRune(rune(r.b[r.pos])) + ", want " + want)
}

// ws skips white space.
func (r *reader) ws() {
	for r.pos < len(r.b) {
		switch r.b[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte, or 0 at the end.
func (r *reader) peek() byte {
	r.ws()
	if r.pos < len(r.b) {
		return r.b[r.pos]
	}
	return 0
}

// atEnd reports whether only white space is left.
func (r *reader) atEnd() bool {
	r.ws()
	return r.pos >= len(r.b)
}

// end returns an error unless only white space is left.
func (r *reader) end() error {
	if !r.atEnd() {
		return r.syntaxErr("unexpected data after the top-level value")
	}
	return nil
}

// open consumes the opening byte c ('{' or '[').
func (r *reader) open(c byte, want string) error {
	if r.peek() != c {
		return r.unexpected(want)
	}
	r.pos++
	return nil
}

// more reports whether another member or element follows in the object or
// array being read, consuming the ',' before it; at the closing byte it
// consumes it and returns false. first is true before the first member.
func (r *reader) more(closing byte, first bool) (bool, error) {
	c := r.peek()
	if c == closing && r.pos < len(r.b) {
		r.pos++
		return false, nil
	}
	if first {
		return true, nil
	}
	if c != ',' || r.pos >= len(r.b) {
		return false, r.unexpected("',' or '" + string(closing) + "'")
	}
	r.pos++
	return true, nil
}

// key reads an object member's key and the ':' after it. The bytes returned
// alias the payload unless the key had escapes.
func (r *reader) key() ([]byte, error) {
	if r.peek() != '"' {
		return nil, r.unexpected("a string key")
	}
	k, err := r.str()
	if err != nil {
		return nil, err
	}
	if r.peek() != ':' {
		return nil, r.unexpected("':'")
	}
	r.pos++
	return k, nil
}

// str reads a string starting at the '"' under the cursor and returns its
// unescaped bytes: a slice of the payload when there were no escapes, a new
// slice otherwise. Invalid UTF-8 and raw control characters are errors.
func (r *reader) str() ([]byte, error) {
	start := r.pos + 1
	ascii := true
	for i := start; i < len(r.b); i++ {
		switch c := r.b[i]; {
		case c == '"':
			s := r.b[start:i]
			if !ascii && !utf8.Valid(s) {
				r.pos = start
				return nil, r.syntaxErr("invalid UTF-8 in string")
			}
			r.pos = i + 1
			return s, nil
		case c == '\\':
			return r.strEscaped(start)
		case c < 0x20:
			r.pos = i
			return nil, r.syntaxErr("control character in string")
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	r.pos = len(r.b)
	return nil, r.syntaxErr("unterminated string")
}

// strEscaped is the slow path of str for strings with escapes.
func (r *reader) strEscaped(start int) ([]byte, error) {
	out := make([]byte, 0, 2*(r.pos-start)+16)
	i := start
	for i < len(r.b) {
		c := r.b[i]
		switch {
		case c == '"':
			r.pos = i + 1
			return out, nil
		case c == '\\':
			var err error
			out, i, err = r.escape(out, i)
			if err != nil {
				return nil, err
			}
		case c < 0x20:
			r.pos = i
			return nil, r.syntaxErr("control character in string")
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			ru, size := utf8.DecodeRune(r.b[i:])
			if ru == utf8.RuneError && size == 1 {
				r.pos = i
				return nil, r.syntaxErr("invalid UTF-8 in string")
			}
			out = append(out, r.b[i:i+size]...)
			i += size
		}
	}
	r.pos = len(r.b)
	return nil, r.syntaxErr("unterminated string")
}

// escape decodes the escape sequence at b[i] (a '\\'), appends it to out and
// returns the index after it. Lone UTF-16 surrogates become U+FFFD, as
// encoding/json does.
func (r *reader) escape(out []byte, i int) ([]byte, int, error) {
	if i+1 >= len(r.b) {
		r.pos = len(r.b)
		return nil, 0, r.syntaxErr("unterminated string")
	}
	switch e := r.b[i+1]; e {
	case '"', '\\', '/':
		return append(out, e), i + 2, nil
	case 'b':
		return append(out, '\b'), i + 2, nil
	case 'f':
		return append(out, '\f'), i + 2, nil
	case 'n':
		return append(out, '\n'), i + 2, nil
	case 'r':
		return append(out, '\r'), i + 2, nil
	case 't':
		return append(out, '\t'), i + 2, nil
	case 'u':
		return r.escapeU(out, i)
	}
	r.pos = i
	return nil, 0, r.syntaxErr("invalid escape in string")
}

// escapeU decodes a \uXXXX escape at b[i], joining a surrogate pair.
func (r *reader) escapeU(out []byte, i int) ([]byte, int, error) {
	ru, ok := hex4(r.b, i+2)
	if !ok {
		r.pos = i
		return nil, 0, r.syntaxErr("invalid \\u escape in string")
	}
	i += 6
	if utf16.IsSurrogate(ru) {
		if lo, ok := hex4(r.b, i+2); ok && i+1 < len(r.b) && r.b[i] == '\\' && r.b[i+1] == 'u' {
			if pair := utf16.DecodeRune(ru, lo); pair != utf8.RuneError {
				return utf8.AppendRune(out, pair), i + 6, nil
			}
		}
		ru = utf8.RuneError
	}
	return utf8.AppendRune(out, ru), i, nil
}

// hex4 decodes the four hex digits at b[i:i+4].
func hex4(b []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(b) {
		return 0, false
	}
	var ru rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		ru = ru<<4 | rune(c)
	}
	return ru, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number reads a JSON number and returns its text and whether it is an
// integer (no fraction, no exponent).
func (r *reader) number() (text []byte, isInt bool, err error) {
	start := r.pos
	i := r.skipDigits(start, true)
	if i < 0 {
		return nil, false, r.unexpected("a value")
	}
	isInt = true
	if i < len(r.b) && r.b[i] == '.' {
		isInt = false
		if i = r.skipDigits(i+1, false); i < 0 {
			return nil, false, r.syntaxErr("digits must follow '.' in a number")
		}
	}
	if i < len(r.b) && (r.b[i] == 'e' || r.b[i] == 'E') {
		isInt = false
		i++
		if i < len(r.b) && (r.b[i] == '+' || r.b[i] == '-') {
			i++
		}
		if i = r.skipDigits(i, false); i < 0 {
			return nil, false, r.syntaxErr("digits must follow the exponent of a number")
		}
	}
	r.pos = i
	return r.b[start:i], isInt, nil
}

// skipDigits skips the digits at b[i], returning the index after them or -1
// when there are none. intPart selects the integer-part grammar: an optional
// '-', then "0" or a digit string not starting with '0'.
func (r *reader) skipDigits(i int, intPart bool) int {
	if intPart && i < len(r.b) && r.b[i] == '-' {
		i++
	}
	if i >= len(r.b) || !isDigit(r.b[i]) {
		return -1
	}
	if intPart && r.b[i] == '0' {
		return i + 1
	}
	for i < len(r.b) && isDigit(r.b[i]) {
		i++
	}
	return i
}

// literal consumes the literal lit (true, false or null).
func (r *reader) literal(lit string) error {
	if !bytes.HasPrefix(r.b[r.pos:], []byte(lit)) {
		return r.unexpected(lit)
	}
	r.pos += len(lit)
	return nil
}

// skip reads over any JSON value, checking its syntax.
func (r *reader) skip(depth int) error {
	switch r.peek() {
	case '{':
		return r.skipContainer('}', depth, true)
	case '[':
		return r.skipContainer(']', depth, false)
	case '"':
		_, err := r.str()
		return err
	case 't':
		return r.literal("true")
	case 'f':
		return r.literal("false")
	case 'n':
		return r.literal("null")
	}
	_, _, err := r.number()
	return err
}

// skipContainer reads over an object (keyed) or an array.
func (r *reader) skipContainer(closing byte, depth int, keyed bool) error {
	if depth >= maxDepth {
		return r.syntaxErr("nested too deeply")
	}
	r.pos++
	for first := true; ; first = false {
		more, err := r.more(closing, first)
		if err != nil || !more {
			return err
		}
		if keyed {
			if _, err := r.key(); err != nil {
				return err
			}
		}
		if err := r.skip(depth + 1); err != nil {
			return err
		}
	}
}

// pow10 holds the powers of ten a float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseFloat converts the text of a JSON number to the nearest float64. It
// reports false when the number is out of float64's range.
func parseFloat(text []byte) (float64, bool) {
	if f, ok := parseFloatFast(text); ok {
		return f, true
	}
	f, err := strconv.ParseFloat(string(text), 64)
	return f, err == nil
}

// parseFloatFast handles numbers without an exponent and with at most 15
// significant digits: the mantissa and the power of ten are then exact
// float64s and one division rounds correctly.
func parseFloatFast(text []byte) (float64, bool) {
	neg := len(text) > 0 && text[0] == '-'
	if neg {
		text = text[1:]
	}
	var mant uint64
	digits, frac := 0, -1
	for i, c := range text {
		switch {
		case isDigit(c):
			mant = mant*10 + uint64(c-'0')
			digits++
		case c == '.':
			frac = len(text) - i - 1
		default:
			return 0, false
		}
	}
	if digits > 15 || frac >= len(pow10) {
		return 0, false
	}
	f := float64(mant)
	if frac > 0 {
		f /= pow10[frac]
	}
	if neg {
		f = -f
	}
	return f, true
}

// parseUint converts the digits of text to a uint64, reporting false on
// anything else or on overflow.
func parseUint(text []byte) (uint64, bool) {
	if len(text) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range text {
		if !isDigit(c) {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}
