package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/telehub/telehub/internal/auth"
	"github.com/telehub/telehub/internal/httpx"
	"github.com/telehub/telehub/internal/logx"
	"github.com/telehub/telehub/internal/topic"
	"github.com/telehub/telehub/storage"
)

// Store is what the REST API reads; *storage.Store implements it.
type Store interface {
	ScanDevices(after, prefix string, max int) ([]storage.Device, string, error)
	Device(id string) (storage.Device, []storage.MetricState, error)
	IDs() storage.IDCodec
	OldestID() (uint64, bool)
	OldestEvent() (uint64, time.Time, bool)
	AfterTime(t time.Time) (uint64, error)
	LastID() uint64
	Scan(after, upTo uint64, match func(topic string) bool, limit int) ([]storage.Record, uint64, error)
	Latest(before uint64, filters []topic.Filter, limit int) ([]storage.Record, uint64, error)
	DeleteDevice(id string) error
}

// Presence is the live view of device liveness, fresher than the stored
// records; *presence.Tracker implements it.
type Presence interface {
	LastSeen(device string) (t time.Time, online bool, transport string, ok bool)
	// Delete drops the device's live state, for a device being deleted:
	// a device online goes offline (reason "disconnect") with its
	// presence event submitted before Delete returns.
	Delete(device string)
}

// Config configures the API.
type Config struct {
	Store Store // required
	// Presence, when set, supplies online, transport and last_seen of
	// devices it knows; otherwise the stored device records do.
	Presence Presence
	// Closers close the live connections of a deleted device: one per
	// transport that holds connections. Default none.
	Closers []DeviceCloser
	// Ready reports whether the hub can do its work (storage open, broker
	// connected); nil means always ready.
	Ready func() error
	// Auth, when set, serves the admin API (/v1/admin/…, admin token
	// required) and, while it holds any credential, guards the read
	// endpoints: /v1/devices, /v1/devices/{id} and /v1/events need a
	// watcher or the admin token, and a watcher reads only within its
	// scopes. The health probes stay open. Default nil: no admin API,
	// everything open.
	Auth *auth.Auth
	// Commands, when set, serves the command endpoints
	// (/v1/devices/{id}/commands, /v1/commands/{cid}); while credentials
	// exist they need the admin token or a watcher token whose commands
	// scope covers the device. Default nil: no command endpoints.
	Commands Commands
	// Revoker, when set, ends the live connections of a credential the
	// admin API revokes. Default nil: open connections stay open.
	Revoker Revoker
	Logger  *slog.Logger // nil: discard
}

// Revoker ends the live connections of revoked credentials.
type Revoker interface {
	// RevokeDevice closes every connection of device and returns how many
	// it closed.
	RevokeDevice(device string) int
	// RevokeWatchers ends every watcher stream whose credential no longer
	// holds and returns how many it ended.
	RevokeWatchers() int
}

// API serves the REST endpoints.
type API struct {
	cfg Config
	log *slog.Logger
}

// ErrNoStore is returned by New without a store.
var ErrNoStore = errors.New("api: no store")

// New returns the API for cfg.
func New(cfg Config) (*API, error) {
	if cfg.Store == nil {
		return nil, ErrNoStore
	}
	cfg.Logger = logx.Or(cfg.Logger)
	return &API{cfg: cfg, log: cfg.Logger}, nil
}

// Mux is where Register adds routes; *http.ServeMux implements it.
type Mux interface {
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
}

// Register adds the API's routes to mux.
func (a *API) Register(mux Mux) {
	mux.HandleFunc("GET /v1/devices", a.reader(a.listDevices))
	mux.HandleFunc("GET /v1/devices/{id}", a.reader(a.getDevice))
	mux.HandleFunc("DELETE /v1/devices/{id}", a.adminOrOpen(a.deleteDevice))
	mux.HandleFunc("GET /v1/events", a.reader(a.listEvents))
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /readyz", a.readyz)
	if a.cfg.Auth != nil {
		a.registerAdmin(mux)
	}
	if a.cfg.Commands != nil {
		a.registerCommands(mux)
	}
}

func (a *API) internalError(w http.ResponseWriter, what string, err error) {
	a.log.Error("api: "+what, "err", err)
	httpx.Error(w, http.StatusInternalServerError, httpx.CodeInternal, fmt.Sprintf("%s failed", what))
}
