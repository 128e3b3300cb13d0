package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/telehub/telehub/internal/auth"
	"github.com/telehub/telehub/internal/httpx"
)

// maxAdminBody bounds the JSON body of an admin request.
const maxAdminBody = 64 << 10

// codeConflict is the error code of a change the admin API may not make:
// the credential is defined in the configuration.
const codeConflict = "conflict"

// issuedDevice is the answer of PUT /v1/admin/devices/{id}/token.
type issuedDevice struct {
	Device string `json:"device"`
	Token  string `json:"token"`
}

// watcherRequest is the body of POST /v1/admin/watchers.
type watcherRequest struct {
	Name   string   `json:"name"`
	Topics []string `json:"topics"`
	// Commands is the commands scope: device-id patterns; optional.
	Commands []string `json:"commands"`
}

// issuedWatcher is the answer of POST /v1/admin/watchers.
type issuedWatcher struct {
	Name     string   `json:"name"`
	Token    string   `json:"token"`
	Topics   []string `json:"topics"`
	Commands []string `json:"commands"`
}

// credentials is the answer of GET /v1/admin/credentials: no secrets.
type credentials struct {
	Admin    bool                `json:"admin"`
	Devices  []deviceCredential  `json:"devices"`
	Watchers []watcherCredential `json:"watchers"`
}

type deviceCredential struct {
	Device  string    `json:"device"`
	Source  string    `json:"source"`
	Created time.Time `json:"created,omitzero"`
}

type watcherCredential struct {
	Name     string    `json:"name"`
	Topics   []string  `json:"topics"`
	Commands []string  `json:"commands"`
	Source   string    `json:"source"`
	Created  time.Time `json:"created,omitzero"`
}

// registerAdmin adds the admin API's routes to mux.
func (a *API) registerAdmin(mux Mux) {
	mux.HandleFunc("PUT /v1/admin/devices/{id}/token", a.admin(a.issueDevice))
	mux.HandleFunc("DELETE /v1/admin/devices/{id}/token", a.admin(a.revokeDevice))
	mux.HandleFunc("POST /v1/admin/watchers", a.admin(a.issueWatcher))
	mux.HandleFunc("DELETE /v1/admin/watchers/{name}", a.admin(a.revokeWatcher))
	mux.HandleFunc("GET /v1/admin/credentials", a.admin(a.listCredentials))
}

// admin guards an admin endpoint: the admin token is required, in the
// Authorization header only (never in a URL, where logs keep it). A
// watcher token gets 403, anything else 401.
func (a *API) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token := bearer(r)
		switch {
		case a.cfg.Auth.Admin(token):
			h(w, r)
		case !a.cfg.Auth.HasAdmin():
			httpx.Unauthorized(w, token, "no admin token is configured (admin_token, --admin-token, TELEHUB_ADMIN_TOKEN)")
		case token != "" && a.isWatcher(token):
			httpx.Forbidden(w, "this endpoint needs the admin token, not a watcher token")
		default:
			httpx.Unauthorized(w, token, "the admin token is required as Authorization: Bearer <token>")
		}
	}
}

func (a *API) isWatcher(token string) bool {
	_, ok := a.cfg.Auth.Watcher(token)
	return ok
}

// bearer returns the Bearer token of the Authorization header, or "".
func bearer(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// issueDevice is PUT /v1/admin/devices/{id}/token: a new token for the
// device, replacing the one issued before; shown once.
func (a *API) issueDevice(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	token, err := a.cfg.Auth.IssueDevice(id)
	if err != nil {
		a.adminError(w, "issuing a device token", err)
		return
	}
	httpx.JSON(w, http.StatusCreated, issuedDevice{Device: id, Token: token})
}

// revokeDevice is DELETE /v1/admin/devices/{id}/token: the device can no
// longer connect, and its open connections are closed.
func (a *API) revokeDevice(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := a.cfg.Auth.RevokeDevice(id); err != nil {
		a.adminError(w, "revoking a device token", err)
		return
	}
	if a.cfg.Revoker != nil {
		n := a.cfg.Revoker.RevokeDevice(id)
		a.log.Info("revoked device disconnected", "device", id, "connections_closed", n)
	}
	w.WriteHeader(http.StatusNoContent)
}

// issueWatcher is POST /v1/admin/watchers {"name":…,"topics":[…],
// "commands":[…]}: a new watcher token with those scopes (commands
// optional), replacing a watcher of the same name; shown once.
func (a *API) issueWatcher(w http.ResponseWriter, r *http.Request) {
	var req watcherRequest
	if status, err := httpx.DecodeJSON(w, r, &req, maxAdminBody); err != nil {
		httpx.Error(w, status, httpx.CodeBadRequest, err.Error())
		return
	}
	scopes, err := auth.ParseScopes(req.Topics)
	if err != nil {
		a.adminError(w, "issuing a watcher token", err)
		return
	}
	commands, err := auth.ParseCommandScopes(req.Commands)
	if err != nil {
		a.adminError(w, "issuing a watcher token", err)
		return
	}
	token, err := a.cfg.Auth.IssueCommander(req.Name, scopes, commands)
	if err != nil {
		a.adminError(w, "issuing a watcher token", err)
		return
	}
	if req.Commands == nil {
		req.Commands = []string{}
	}
	httpx.JSON(w, http.StatusCreated, issuedWatcher{Name: req.Name, Token: token, Topics: req.Topics, Commands: req.Commands})
}

// revokeWatcher is DELETE /v1/admin/watchers/{name}: the token no longer
// works, and the streams opened with it end.
func (a *API) revokeWatcher(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := a.cfg.Auth.RevokeWatcher(name); err != nil {
		a.adminError(w, "revoking a watcher token", err)
		return
	}
	if a.cfg.Revoker != nil {
		n := a.cfg.Revoker.RevokeWatchers()
		a.log.Info("revoked watcher disconnected", "watcher", name, "streams_ended", n)
	}
	w.WriteHeader(http.StatusNoContent)
}

// listCredentials is GET /v1/admin/credentials: every credential, without
// tokens or hashes.
func (a *API) listCredentials(w http.ResponseWriter, r *http.Request) {
	out := credentials{Admin: a.cfg.Auth.HasAdmin(), Devices: []deviceCredential{}, Watchers: []watcherCredential{}}
	for _, d := range a.cfg.Auth.Devices() {
		out.Devices = append(out.Devices, deviceCredential{Device: d.Device, Source: d.Source, Created: d.Created})
	}
	for _, wc := range a.cfg.Auth.Watchers() {
		out.Watchers = append(out.Watchers, watcherCredential{Name: wc.Name, Topics: wc.Topics, Commands: wc.Commands,
			Source: wc.Source, Created: wc.Created})
	}
	httpx.JSON(w, http.StatusOK, out)
}

// adminError answers an error of the auth package with its status.
func (a *API) adminError(w http.ResponseWriter, what string, err error) {
	switch {
	case errors.Is(err, auth.ErrBadName), errors.Is(err, auth.ErrBadScope):
		httpx.Error(w, http.StatusBadRequest, httpx.CodeBadRequest, err.Error())
	case errors.Is(err, auth.ErrNotFound):
		httpx.Error(w, http.StatusNotFound, httpx.CodeNotFound, err.Error())
	case errors.Is(err, auth.ErrConfigured):
		httpx.Error(w, http.StatusConflict, codeConflict, err.Error()+": change it in the configuration")
	default:
		a.internalError(w, what, err)
	}
}
