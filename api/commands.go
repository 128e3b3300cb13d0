package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/commands"
	"github.com/telehub/telehub/internal/httpx"
	"github.com/telehub/telehub/internal/topic"
	"github.com/telehub/telehub/storage"
)

// Bounds of the command endpoints.
const (
	maxCommandBody    = 32 << 10
	maxCommandWait    = 60 * time.Second
	defaultListLimit  = 100
	maxListLimit      = 1000
	codeTooMany       = "too_many_commands"
	codeCommandClosed = "conflict"
)

// Commands is what the command endpoints need; *commands.Service
// implements it.
type Commands interface {
	Create(ctx context.Context, device string, r commands.Request) (bridge.Command, error)
	Get(id string) (bridge.Command, error)
	List(device string, state bridge.CommandState, limit int) ([]bridge.Command, error)
	Wait(ctx context.Context, id string) (bridge.Command, error)
	Cancel(ctx context.Context, id string) (bridge.Command, error)
}

// commandRequest is the body of POST /v1/devices/{id}/commands.
type commandRequest struct {
	Name   string          `json:"name"`
	Params json.RawMessage `json:"params"`
	TTL    string          `json:"ttl"`
}

// registerCommands adds the command endpoints to mux.
func (a *API) registerCommands(mux Mux) {
	mux.HandleFunc("POST /v1/devices/{id}/commands", a.commander(a.createCommand))
	mux.HandleFunc("GET /v1/devices/{id}/commands", a.commander(a.listCommands))
	mux.HandleFunc("GET /v1/commands/{cid}", a.commander(a.getCommand))
	mux.HandleFunc("DELETE /v1/commands/{cid}", a.commander(a.cancelCommand))
}

// commandedDevice returns the device of the request's path once its id is
// valid and right may command it; otherwise it answers the request.
func commandedDevice(w http.ResponseWriter, r *http.Request, right commandRight) (string, bool) {
	device := r.PathValue("id")
	if err := topic.ValidDeviceID(device); err != nil {
		httpx.Error(w, http.StatusBadRequest, httpx.CodeBadRequest, err.Error())
		return "", false
	}
	if !right.allows(device) {
		right.forbid(w, device)
		return "", false
	}
	return device, true
}

func (a *API) createCommand(w http.ResponseWriter, r *http.Request, right commandRight) {
	device, ok := commandedDevice(w, r, right)
	if !ok {
		return
	}
	wait, err := waitParam(r)
	if err != nil {
		httpx.Error(w, http.StatusBadRequest, httpx.CodeBadRequest, err.Error())
		return
	}
	var body commandRequest
	if status, err := httpx.DecodeJSON(w, r, &body, maxCommandBody); err != nil {
		httpx.Error(w, status, httpx.CodeBadRequest, err.Error())
		return
	}
	req := commands.Request{Name: body.Name, Params: body.Params}
	if req.TTL, err = ttlParam(body.TTL); err != nil {
		httpx.Error(w, http.StatusBadRequest, httpx.CodeBadRequest, err.Error())
		return
	}
	c, err := a.cfg.Commands.Create(r.Context(), device, req)
	if err != nil {
		a.commandError(w, "create command", err)
		return
	}
	status := http.StatusCreated
	if wait > 0 {
		c, status = a.waitFinal(r, c, wait)
	}
	w.Header().Set("Location", "/v1/commands/"+c.ID)
	httpx.JSON(w, status, c)
}

// ttlParam reads the body's ttl: "" (absent) is 0, which the service
// takes as its default; a given ttl must be a duration the service accepts,
// so "0s" is refused rather than read as absent.
func ttlParam(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	ttl, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("ttl %q: a duration such as \"5m\" or \"24h\"", s)
	}
	if ttl < commands.MinTTL || ttl > commands.MaxTTL {
		return 0, fmt.Errorf("ttl %q: must be between %s and %s", s, commands.MinTTL, commands.MaxTTL)
	}
	return ttl, nil
}

// waitFinal holds the answer until c is final or wait ends: 201 with the
// final command, else 202 with the command as it stands.
func (a *API) waitFinal(r *http.Request, c bridge.Command, wait time.Duration) (bridge.Command, int) {
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	got, err := a.cfg.Commands.Wait(ctx, c.ID)
	if err != nil {
		a.log.Warn("api: wait for command", "command", c.ID, "err", err)
		return c, http.StatusAccepted
	}
	if got.State.Final() {
		return got, http.StatusCreated
	}
	return got, http.StatusAccepted
}

// waitParam reads ?wait=, a duration of at most a minute.
func waitParam(r *http.Request) (time.Duration, error) {
	s := r.URL.Query().Get("wait")
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > maxCommandWait {
		return 0, fmt.Errorf("wait %q: a duration from 0s to %s, such as \"10s\"", s, maxCommandWait)
	}
	return d, nil
}

func (a *API) getCommand(w http.ResponseWriter, r *http.Request, right commandRight) {
	c, ok := a.commandFor(w, r, right)
	if ok {
		httpx.JSON(w, http.StatusOK, c)
	}
}

// commandFor reads the command of the path's {cid} and checks that right
// covers its device; when not, it answers and returns false.
func (a *API) commandFor(w http.ResponseWriter, r *http.Request, right commandRight) (bridge.Command, bool) {
	c, err := a.cfg.Commands.Get(r.PathValue("cid"))
	if err != nil {
		a.commandError(w, "read command", err)
		return c, false
	}
	if !right.allows(c.Device) {
		right.forbid(w, c.Device)
		return c, false
	}
	return c, true
}

// commandList is the answer of GET /v1/devices/{id}/commands.
type commandList struct {
	Commands []bridge.Command `json:"commands"`
}

func (a *API) listCommands(w http.ResponseWriter, r *http.Request, right commandRight) {
	device, ok := commandedDevice(w, r, right)
	if !ok {
		return
	}
	q := r.URL.Query()
	state := bridge.CommandState(q.Get("state"))
	if state != "" && !state.Valid() {
		httpx.Error(w, http.StatusBadRequest, httpx.CodeBadRequest, fmt.Sprintf(
			"state %q: one of queued, sent, delivered, succeeded, failed, expired, canceled", state))
		return
	}
	limit := defaultListLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListLimit {
			httpx.Error(w, http.StatusBadRequest, httpx.CodeBadRequest, fmt.Sprintf("limit %q: a number from 1 to %d", s, maxListLimit))
			return
		}
		limit = n
	}
	cmds, err := a.cfg.Commands.List(device, state, limit)
	if err != nil {
		a.internalError(w, "list commands", err)
		return
	}
	if cmds == nil {
		cmds = []bridge.Command{}
	}
	httpx.JSON(w, http.StatusOK, commandList{Commands: cmds})
}

func (a *API) cancelCommand(w http.ResponseWriter, r *http.Request, right commandRight) {
	if _, ok := a.commandFor(w, r, right); !ok {
		return
	}
	c, err := a.cfg.Commands.Cancel(r.Context(), r.PathValue("cid"))
	if err != nil {
		a.commandError(w, "cancel command", err)
		return
	}
	httpx.JSON(w, http.StatusOK, c)
}

// commandError answers the error of a command operation.
func (a *API) commandError(w http.ResponseWriter, what string, err error) {
	switch {
	case errors.Is(err, commands.ErrInvalid):
		httpx.Error(w, http.StatusBadRequest, httpx.CodeBadRequest, err.Error())
	case errors.Is(err, storage.ErrTooManyCommands):
		httpx.Error(w, http.StatusTooManyRequests, codeTooMany, err.Error()+": wait for some to finish, or cancel them")
	case errors.Is(err, storage.ErrCommandNotFound):
		httpx.Error(w, http.StatusNotFound, httpx.CodeNotFound, "no such command")
	case errors.Is(err, storage.ErrCommandState):
		httpx.Error(w, http.StatusConflict, codeCommandClosed, err.Error())
	case errors.Is(err, storage.ErrClosed):
		httpx.Error(w, http.StatusServiceUnavailable, httpx.CodeUnavailable, "hub is shutting down")
	default:
		a.internalError(w, what, err)
	}
}
