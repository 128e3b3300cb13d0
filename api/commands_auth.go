package api

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/telehub/telehub/internal/auth"
	"github.com/telehub/telehub/internal/httpx"
	"github.com/telehub/telehub/internal/topic"
)

// commandRight is which devices a request may command: every device (the
// admin token, or no credentials at all), or those a token's commands
// scope covers.
type commandRight struct {
	all    bool
	scopes []topic.Filter
}

// allows reports whether the right covers device.
func (c commandRight) allows(device string) bool {
	return c.all || auth.AllowCommands(c.scopes, device)
}

// forbid answers 403 insufficient_scope for device.
func (c commandRight) forbid(w http.ResponseWriter, device string) {
	httpx.Forbidden(w, fmt.Sprintf("this token's commands scope %s does not cover device %q",
		patternList(c.scopes), device))
}

// patternList shows a commands scope as its device-id patterns.
func patternList(scopes []topic.Filter) string {
	ps := make([]string, len(scopes))
	for i, f := range scopes {
		ps[i] = strings.TrimPrefix(f.String(), topic.CommandsRoot)
	}
	return "[" + strings.Join(ps, " ") + "]"
}

// commandHandler is a command endpoint given the request's right.
type commandHandler func(w http.ResponseWriter, r *http.Request, right commandRight)

// commander guards the command endpoints. Without credentials anyone may
// command (the hub then listens on loopback only, unless --insecure). With
// them, the admin token may command every device and a watcher token the
// devices its commands scope covers, which the handler checks once it
// knows the device; a watcher token without a commands scope gets 403
// insufficient_scope at once, any other request 401.
func (a *API) commander(h commandHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.Auth == nil || !a.cfg.Auth.Enabled() {
			h(w, r, commandRight{all: true})
			return
		}
		token := httpx.RequestToken(r)
		if a.cfg.Auth.Admin(token) {
			h(w, r, commandRight{all: true})
			return
		}
		scopes, ok := a.cfg.Auth.Commands(token)
		switch {
		case !ok:
			httpx.Unauthorized(w, token, "the admin token or a token with a commands scope is required to command devices")
		case len(scopes) == 0:
			httpx.Forbidden(w, "this token has no commands scope: it may not command devices")
		default:
			h(w, r, commandRight{scopes: scopes})
		}
	}
}
