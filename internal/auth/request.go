package auth

import (
	"net/http"
	"strings"
)

// RequestToken returns the token of an HTTP request: the Bearer token of
// the Authorization header, else the token query parameter (browsers'
// EventSource cannot set headers). "" when there is none.
func RequestToken(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		if token = strings.TrimSpace(token); token != "" {
			return token
		}
	}
	return r.URL.Query().Get("token")
}
