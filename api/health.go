package api

import (
	"net/http"

	"github.com/telehub/telehub/internal/httpx"
)

type status struct {
	Status string `json:"status"`
}

// healthz answers 200 while the process serves HTTP at all.
func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	httpx.JSON(w, http.StatusOK, status{"ok"})
}

// readyz answers 200 when storage is open and the broker connected, 503
// with the reason otherwise.
func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Ready != nil {
		if err := a.cfg.Ready(); err != nil {
			httpx.Error(w, http.StatusServiceUnavailable, httpx.CodeUnavailable, err.Error())
			return
		}
	}
	httpx.JSON(w, http.StatusOK, status{"ready"})
}
