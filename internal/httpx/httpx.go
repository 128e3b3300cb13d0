// Package httpx holds the small HTTP helpers shared by telehub's handlers:
// the JSON error body, JSON responses, the 401 and 403 answers with their
// Bearer challenge, request tokens and WebSocket upgrade checks.
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

// UpgradeProblem says what keeps r from being a WebSocket upgrade request
// (RFC 6455 §4.2.1), or "" when it is one. Endpoints answer a problem with a
// JSON 400 before handing the request to the WebSocket library.
func UpgradeProblem(r *http.Request) string {
	switch {
	case r.ProtoMajor != 1 || r.ProtoMinor < 1:
		return "a WebSocket upgrade needs HTTP/1.1"
	case !headerHasToken(r.Header, "Upgrade", "websocket"):
		return "expected a WebSocket upgrade (Upgrade: websocket)"
	case !headerHasToken(r.Header, "Connection", "upgrade"):
		return "expected a WebSocket upgrade (Connection: Upgrade)"
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return "unsupported WebSocket version: want Sec-WebSocket-Version: 13"
	case r.Header.Get("Sec-WebSocket-Key") == "":
		return "missing Sec-WebSocket-Key"
	}
	return ""
}

// headerHasToken reports whether a comma-separated header of h holds token,
// case-insensitively.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// CodeMethodNotAllowed is the error code of a 405.
const CodeMethodNotAllowed = "method_not_allowed"

// Routes serves mux, answering requests that match none of its routes with
// the JSON error body: 405 with Allow when the path has routes for other
// methods, else 404.
func Routes(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		probe := &statusProbe{header: http.Header{}}
		mux.ServeHTTP(probe, r)
		if allow := probe.header.Get("Allow"); probe.status == http.StatusMethodNotAllowed && allow != "" {
			w.Header().Set("Allow", allow)
			Error(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed,
				r.Method+" is not allowed on "+r.URL.Path+" (allowed: "+allow+")")
			return
		}
		Error(w, http.StatusNotFound, CodeNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
}

// statusProbe is a ResponseWriter that keeps the status and headers of
// ServeMux's own plain-text 404 and 405 answers and drops their body.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header         { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusProbe) WriteHeader(status int)      { p.status = status }
