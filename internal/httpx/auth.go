package httpx

import "net/http"

// bearerRealm is the Bearer challenge (RFC 6750) of every 401 and 403
// telehub answers.
const bearerRealm = `Bearer realm="telehub"`

// Unauthorized answers 401 with a Bearer challenge and the JSON error body
// (code unauthorized): the request needs credentials it did not present.
// token is the credential the request did present ("" for none): when
// there is one, it was refused, so the challenge adds
// error="invalid_token" and the message starts with "invalid token: ".
// The token itself is never written.
func Unauthorized(w http.ResponseWriter, token, msg string) {
	challenge := bearerRealm
	if token != "" {
		challenge += `, error="invalid_token"`
		msg = "invalid token: " + msg
	}
	w.Header().Set("WWW-Authenticate", challenge)
	Error(w, http.StatusUnauthorized, CodeUnauthorized, msg)
}

// Forbidden answers 403 with a Bearer challenge whose error is
// insufficient_scope and the JSON error body (code forbidden): the
// credentials are valid but do not cover what the request asks for.
func Forbidden(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", bearerRealm+`, error="insufficient_scope"`)
	Error(w, http.StatusForbidden, CodeForbidden, msg)
}
