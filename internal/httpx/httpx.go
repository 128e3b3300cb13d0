// Package httpx holds the small HTTP helpers shared by telehub's handlers:
// the JSON error body of SPEC §7, JSON responses and request tokens.
package httpx

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Error codes of the JSON error body.
const (
	CodeBadRequest   = "bad_request"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeNotFound     = "not_found"
	CodeGone         = "gone"
	CodeUnavailable  = "unavailable"
	CodeInternal     = "internal"
)

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Error writes {"error":{"code":code,"message":msg}} with the given status.
func Error(w http.ResponseWriter, status int, code, msg string) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, msg
	JSON(w, status, b)
}

// JSON writes v as a JSON response with the given status.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the status is out; a failed write means the client left
}

// RequestToken returns the credential of a request: the Bearer token of the
// Authorization header, else the token query parameter (browsers cannot
// set headers on WebSockets and EventSource). "" when there is none.
func RequestToken(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		if token = strings.TrimSpace(token); token != "" {
			return token
		}
	}
	return r.URL.Query().Get("token")
}
