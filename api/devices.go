package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/httpx"
	"github.com/telehub/telehub/internal/topic"
	"github.com/telehub/telehub/storage"
)

// deviceSummary is one element of GET /v1/devices.
type deviceSummary struct {
	ID        string   `json:"id"`
	Online    bool     `json:"online"`
	Transport string   `json:"transport,omitempty"`
	LastSeen  string   `json:"last_seen,omitempty"`
	Metrics   []string `json:"metrics"`
	seqEpoch
}

// seqEpoch is the seq bookkeeping of a device record: readings acked as
// duplicates, seq epochs started after the first, and the current epoch's
// boot.
type seqEpoch struct {
	Duplicates  uint64 `json:"duplicates"`
	SeqRestarts uint64 `json:"seq_restarts"`
	Boot        string `json:"boot,omitempty"`
}

func epochOf(d storage.Device) seqEpoch {
	return seqEpoch{Duplicates: d.Duplicates, SeqRestarts: d.SeqRestarts, Boot: d.Boot}
}

// deviceDetail is GET /v1/devices/{id}.
type deviceDetail struct {
	ID        string                     `json:"id"`
	Online    bool                       `json:"online"`
	Transport string                     `json:"transport,omitempty"`
	LastSeen  string                     `json:"last_seen,omitempty"`
	State     map[string]json.RawMessage `json:"state"`
	seqEpoch
}

func (a *API) getDevice(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := topic.ValidDeviceID(id); err != nil {
		httpx.Error(w, http.StatusBadRequest, httpx.CodeBadRequest, err.Error())
		return
	}
	acc := accessOf(r)
	d, states, err := a.cfg.Store.Device(id)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && !acc.seesDevice(id)) {
		// A device outside a watcher's scopes is not there for it.
		httpx.Error(w, http.StatusNotFound, httpx.CodeNotFound, "no device "+id)
		return
	}
	if err != nil {
		a.internalError(w, "reading device", err)
		return
	}
	online, transport, seen := a.liveness(d)
	out := deviceDetail{ID: d.ID, Online: online, Transport: transport, LastSeen: seen,
		State: make(map[string]json.RawMessage, len(states)), seqEpoch: epochOf(d)}
	for _, s := range states {
		// A watcher sees only the values its scopes cover.
		if acc.allowTopic(topic.Telemetry(d.ID, s.Metric)) {
			out.State[s.Metric] = s.State
		}
	}
	httpx.JSON(w, http.StatusOK, out)
}

// liveness merges the stored record with the live view, which is ahead of
// storage by the presence events not yet committed and by heartbeats,
// which are not stored one by one.
func (a *API) liveness(d storage.Device) (online bool, transport, lastSeen string) {
	online, transport, seen := d.Online, d.Transport, d.LastSeen
	if a.cfg.Presence != nil {
		if t, on, tr, ok := a.cfg.Presence.LastSeen(d.ID); ok {
			online, transport = on, tr
			if t.After(seen) {
				seen = t
			}
		}
	}
	if seen.IsZero() {
		return online, transport, ""
	}
	return online, transport, bridge.FormatTime(seen)
}
