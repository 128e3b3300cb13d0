package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseSecret(t *testing.T) {
	plain := "correct-horse-battery-staple"
	sum := sha256.Sum256([]byte(plain))
	hexSum := hex.EncodeToString(sum[:])
	tests := []struct {
		name, in, want string
		err            bool
	}{
		{name: "plain token is hashed", in: plain, want: "sha256:" + hexSum},
		{name: "hash kept", in: "sha256:" + hexSum, want: "sha256:" + hexSum},
		{name: "upper-case hex", in: "sha256:" + strings.ToUpper(hexSum), want: "sha256:" + hexSum},
		{name: "shortest plain", in: strings.Repeat("x", MinTokenLen), want: ""},
		{name: "empty", in: "", err: true},
		{name: "too short", in: strings.Repeat("x", MinTokenLen-1), err: true},
		{name: "too long", in: strings.Repeat("x", MaxTokenLen+1), err: true},
		{name: "space", in: "correct horse battery staple", err: true},
		{name: "control byte", in: "correct-horse\x00battery", err: true},
		{name: "non-ASCII", in: "correct-horse-battery-stäple", err: true},
		{name: "short hash", in: "sha256:" + hexSum[:63], err: true},
		{name: "long hash", in: "sha256:" + hexSum + "0", err: true},
		{name: "not hex", in: "sha256:" + strings.Repeat("g", 64), err: true},
		{name: "bare prefix", in: "sha256:", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSecret(tt.in)
			if tt.err {
				if !errors.Is(err, ErrBadToken) {
					t.Fatalf("ParseSecret = %q, %v; want ErrBadToken", got, err)
				}
				if len(tt.in) >= MinTokenLen && !strings.HasPrefix(tt.in, HashPrefix) && strings.Contains(err.Error(), tt.in) {
					t.Fatalf("error repeats the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != "" && got != tt.want {
				t.Fatalf("ParseSecret = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok, d, err := newToken(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(raw) != tokenBytes {
			t.Fatalf("token %q is not %d base64url bytes: %v", tok, tokenBytes, err)
		}
		if d != sha256.Sum256([]byte(tok)) {
			t.Fatal("digest is not the SHA-256 of the token")
		}
		if seen[tok] {
			t.Fatalf("token %q issued twice", tok)
		}
		seen[tok] = true
	}
}

func TestNewTokenRandomFailure(t *testing.T) {
	if _, _, err := newToken(iotest.ErrReader(errors.New("no entropy"))); err == nil {
		t.Fatal("newToken succeeded without random bytes")
	}
}

func TestDigestEqual(t *testing.T) {
	a, b := hashToken("token-a-0123456789"), hashToken("token-b-0123456789")
	if !a.equal(a) || a.equal(b) || a.equal(digest{}) {
		t.Fatal("digest comparison is wrong")
	}
}
