package jsonx

import (
	"strconv"
	"unicode/utf8"
)

// hexDigits are the digits of \u escapes.
const hexDigits = "0123456789abcdef"

// AppendString appends s to b as a JSON string, escaped exactly as
// encoding/json escapes it: '"', '\\' and control characters, '<', '>'
// and '&' (HTML safety), U+2028 and U+2029. Each byte of invalid UTF-8
// becomes U+FFFD, so the result is valid JSON for any input.
func AppendString[S []byte | string](b []byte, s S) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if safe(c) {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			b = appendEscape(b, c)
			i++
			start = i
			continue
		}
		// a short conversion, so that it stays on the stack
		r, size := utf8.DecodeRuneInString(string(s[i:min(len(s), i+utf8.UTFMax)]))
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			if r == utf8.RuneError {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			}
			start = i + size
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// safe reports whether the ASCII byte c goes into a JSON string as is.
func safe(c byte) bool {
	return c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
}

// appendEscape appends the escape of the ASCII byte c.
func appendEscape(b []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(b, '\\', c)
	case '\b':
		return append(b, '\\', 'b')
	case '\f':
		return append(b, '\\', 'f')
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	}
	return append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
}

// Truncate returns s cut to at most n bytes without splitting a valid
// UTF-8 sequence, for bounding the strings telehub sends.
func Truncate(s string, n int) string {
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

// MaxQuoted is how much of a client-supplied string an error message shows,
// so that a hostile value cannot make error messages or events large.
const MaxQuoted = 80

// Quote returns s in double quotes for an error message (Go quoting, so
// control characters and invalid bytes are visible), cut to 80 bytes at a
// character boundary with "..." appended when it was longer.
func Quote(s string) string {
	if len(s) <= MaxQuoted {
		return strconv.Quote(s)
	}
	return strconv.Quote(Truncate(s, MaxQuoted)) + "..."
}
