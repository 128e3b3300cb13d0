package api

import (
	"errors"
	"net/http"

	"github.com/telehub/telehub/internal/httpx"
	"github.com/telehub/telehub/internal/topic"
	"github.com/telehub/telehub/storage"
)

// DeviceCloser closes the live connections of a device, for a device
// being deleted; *devices.WS and *devices.Broker implement it.
type DeviceCloser interface {
	// CloseDevice closes every connection of device and returns how many
	// it closed.
	CloseDevice(device string) int
}

// adminOrOpen guards a changing endpoint: the admin token while
// credentials exist, nothing without any (the hub then listens on
// loopback only).
func (a *API) adminOrOpen(h http.HandlerFunc) http.HandlerFunc {
	if a.cfg.Auth == nil {
		return h
	}
	guarded := a.admin(h)
	return func(w http.ResponseWriter, r *http.Request) {
		if !a.cfg.Auth.Enabled() {
			h(w, r)
			return
		}
		guarded(w, r)
	}
}

// deleteDevice is DELETE /v1/devices/{id}: the device's record, latest
// state and seq are removed and its connections closed; its retained
// events stay until retention drops them.
//
// The presence tracker lets go of the device first: a device online goes
// offline (reason "disconnect", the end of the connections closed next),
// and those ends publish no further presence event that would record the
// device again. The store then commits whatever was submitted before the
// delete, that offline event included, and deletes, keeping the device's
// last session so that its sessions go on increasing when it comes back.
func (a *API) deleteDevice(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := topic.ValidDeviceID(id); err != nil {
		httpx.Error(w, http.StatusBadRequest, httpx.CodeBadRequest, err.Error())
		return
	}
	if _, _, err := a.cfg.Store.Device(id); err != nil {
		a.deleteError(w, id, err)
		return
	}
	if a.cfg.Presence != nil {
		a.cfg.Presence.Delete(id)
	}
	closed := 0
	for _, c := range a.cfg.Closers {
		closed += c.CloseDevice(id)
	}
	if err := a.cfg.Store.DeleteDevice(id); err != nil {
		a.deleteError(w, id, err)
		return
	}
	a.log.Info("device deleted", "device", id, "connections_closed", closed)
	w.WriteHeader(http.StatusNoContent)
}

// deleteError answers a failed lookup or delete: 404 for an unknown
// device.
func (a *API) deleteError(w http.ResponseWriter, id string, err error) {
	if errors.Is(err, storage.ErrNotFound) {
		httpx.Error(w, http.StatusNotFound, httpx.CodeNotFound, "no device "+id)
		return
	}
	a.internalError(w, "deleting device", err)
}
