package httpx

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// decodeError returns the code and message of a JSON error body.
func decodeError(t *testing.T, rec *httptest.ResponseRecorder) (code, msg string) {
	t.Helper()
	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	return body.Error.Code, body.Error.Message
}

func TestUnauthorized(t *testing.T) {
	tests := []struct {
		name, token, challenge, msg string
	}{
		{"no token", "", `Bearer realm="telehub"`, "a token is required"},
		{"refused token", "s3cret-token", `Bearer realm="telehub", error="invalid_token"`, "invalid token: a token is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Unauthorized(rec, tt.token, "a token is required")
			code, msg := decodeError(t, rec)
			if rec.Code != http.StatusUnauthorized || code != CodeUnauthorized || msg != tt.msg {
				t.Errorf("got %d %s %q, want 401 %s %q", rec.Code, code, msg, CodeUnauthorized, tt.msg)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.challenge)
			}
			if tt.token != "" && strings.Contains(rec.Body.String()+rec.Header().Get("WWW-Authenticate"), tt.token) {
				t.Error("the answer shows the token")
			}
		})
	}
}

func TestForbidden(t *testing.T) {
	rec := httptest.NewRecorder()
	Forbidden(rec, "outside the scopes")
	code, msg := decodeError(t, rec)
	if rec.Code != http.StatusForbidden || code != CodeForbidden || msg != "outside the scopes" {
		t.Errorf("got %d %s %q", rec.Code, code, msg)
	}
	if got, want := rec.Header().Get("WWW-Authenticate"), `Bearer realm="telehub", error="insufficient_scope"`; got != want {
		t.Errorf("WWW-Authenticate %q, want %q", got, want)
	}
}
