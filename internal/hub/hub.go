// Package hub builds a whole telehub from a config.Config and runs it: the
// storage, the bridge, the fan-out to watchers, the device transports, the
// liveness engine and the HTTP server. It is what cmd/telehub runs and what
// integration tests start in-process on port 0.
//
// A Hub is started once and shut down once; Shutdown stops accepting,
// closes devices and watchers, and flushes storage before it returns.
package hub

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/telehub/telehub/api"
	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/cluster"
	"github.com/telehub/telehub/commands"
	"github.com/telehub/telehub/devices"
	"github.com/telehub/telehub/devices/presence"
	"github.com/telehub/telehub/internal/auth"
	"github.com/telehub/telehub/internal/config"
	"github.com/telehub/telehub/internal/httpx"
	"github.com/telehub/telehub/internal/logx"
	"github.com/telehub/telehub/internal/metrics"
	"github.com/telehub/telehub/internal/topic"
	"github.com/telehub/telehub/storage"
	"github.com/telehub/telehub/stream"
	"github.com/telehub/telehub/web"
)

// Version is reported by telehub version and in telehub_build_info; set at
// build time with -ldflags "-X github.com/telehub/telehub/internal/hub.Version=…".
var Version = "dev"

// Hub is one running telehub.
type Hub struct {
	cfg     config.Config
	log     *slog.Logger
	metrics *metrics.Metrics

	// auth holds the credentials; secured is whether any existed at build
	// time, which turns authentication on for every transport.
	auth    *auth.Auth
	secured bool

	store    *storage.Store
	bridge   *bridge.Bridge
	fanout   *stream.Hub
	liveness *presence.Tracker
	commands *commands.Service
	wsDev    *devices.WS
	broker   *devices.Broker   // nil unless the embedded broker runs
	external *devices.External // nil unless --mqtt-broker
	cluster  *cluster.Cluster  // nil unless --cluster

	httpLn  net.Listener
	server  *http.Server
	routes  []string // the patterns the HTTP server serves
	debugLn net.Listener
	debug   *http.Server

	// synced is storage's Synced hook; nil outside tests.
	synced func(lastID uint64)

	// sup supervises the parts once they are built.
	sup      *supervisor
	stopOnce sync.Once
	stopErr  error
}

// New builds a hub from cfg: it opens storage and binds the listeners (so
// HTTPAddr and MQTTAddr are known), but serves nothing until Start or Run.
// A nil logger discards (logx.Or).
func New(cfg config.Config, logger *slog.Logger) (*Hub, error) {
	return newHub(cfg, logger, nil)
}

// newHub is New with a storage.Config.Synced hook (nil: none), through
// which tests observe when each commit became durable.
func newHub(cfg config.Config, logger *slog.Logger, synced func(lastID uint64)) (*Hub, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger = logx.Or(logger)
	h := &Hub{cfg: cfg, log: logger, metrics: metrics.New(Version), synced: synced}
	if err := h.build(); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), buildCloseTimeout)
		defer cancel()
		return nil, errors.Join(err, newSupervisor(h.parts()).stop(ctx))
	}
	h.sup = newSupervisor(h.parts())
	return h, nil
}

// buildCloseTimeout bounds closing the parts of a hub whose build failed.
const buildCloseTimeout = 5 * time.Second

func (h *Hub) build() error {
	if err := h.buildAuth(); err != nil {
		return err
	}
	if err := h.buildStorage(); err != nil {
		return err
	}
	if err := h.buildDevices(); err != nil {
		return err
	}
	return h.buildHTTP()
}

// buildAuth loads the credentials: the configuration's and those of the
// credentials file. Without any, the hub listens on loopback only unless
// --insecure; the configuration let a non-loopback address pass
// on the mere presence of the file, checked here for real.
func (h *Hub) buildAuth() error {
	cfg := h.cfg.Credentials()
	cfg.Logger = h.log.With("component", "auth")
	var err error
	if h.auth, err = auth.New(cfg); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	h.secured = h.auth.Enabled()
	if exposed := h.cfg.Exposed(); !h.secured && !h.cfg.Insecure && len(exposed) > 0 {
		return fmt.Errorf("%w: %s: not loopback, and no credentials are configured nor in %s; configure some or pass --insecure",
			config.ErrInvalid, strings.Join(exposed, ", "), cfg.Path)
	}
	return nil
}

// resumesPresence is the liveness engine's Resume: MQTT devices of an
// external broker stay connected to it while the hub restarts, so they stay
// online and are judged by the device timeout; every other connection ended
// with the hub.
func (h *Hub) resumesPresence(d presence.Record) bool {
	return h.cfg.MQTTBroker != "" && d.Transport == bridge.TransportMQTT
}

// authorizeWatcher is the watchers' stream.Config.Authorize: the admin
// token watches anything, a watcher token within its scopes.
func (h *Hub) authorizeWatcher(r *http.Request) (func(topic.Filter) bool, error) {
	token := httpx.RequestToken(r)
	if h.auth.Admin(token) {
		return nil, nil
	}
	scopes, ok := h.auth.Watcher(token)
	if !ok {
		return nil, errors.New("a watcher or admin token is required")
	}
	return func(f topic.Filter) bool { return auth.AllowFilter(scopes, f) }, nil
}

// authenticateWS is the WebSocket devices' Authenticate: the device's
// token in the Authorization header or ?token=.
func (h *Hub) authenticateWS(r *http.Request, device string) bool {
	return h.auth.Device(device, httpx.RequestToken(r))
}

func (h *Hub) buildStorage() error {
	if !h.cfg.Fsync {
		h.log.Warn("fsync is off: a crash or power loss can take back readings that were already acknowledged")
	}
	path := filepath.Join(h.cfg.DataDir, "telehub.db")
	var err error
	h.store, err = storage.Open(storage.Config{
		Path:      path,
		NoFsync:   !h.cfg.Fsync,
		MaxEvents: h.cfg.MaxEvents,
		MaxAge:    h.cfg.MaxAge,
		MaxBytes:  h.cfg.MaxBytes,
		// Finished commands follow; their events stay under MaxAge.
		CommandRetention: h.cfg.CommandRetention,
		// In a cluster, ids carry their event's time, and a watcher that
		// resumes with a peer hub's id is replayed from that time.
		Cluster:        h.cfg.Cluster != "",
		ResumeMargin:   h.cfg.ClusterResumeMargin,
		ForwardCommand: h.forwardCommand(),
		// The fan-out is built right below; no commit happens before
		// Start, so it is always set when this runs.
		OnCommit: h.committed,
		Synced:   h.synced,
		Origins:  h.cfg.Cluster != "",
		Node:     h.cfg.NodeID,
		Logger:   h.log.With("component", "storage"),
		Metrics:  h.metrics,
	})
	if errors.Is(err, storage.ErrDamaged) {
		return damagedFile(err, path)
	}
	if err != nil {
		return fmt.Errorf("open storage: %w", err)
	}
	if err := h.buildCluster(); err != nil {
		return err
	}
	streamCfg := stream.Config{
		Log:            h.store,
		QueueLimit:     h.cfg.WatcherQueue,
		Heartbeat:      h.cfg.HeartbeatInterval,
		AllowedOrigins: h.cfg.AllowedOrigins,
		Logger:         h.log.With("component", "stream"),
		Metrics:        h.metrics,
	}
	if h.secured {
		streamCfg.Authorize = h.authorizeWatcher
	}
	h.fanout, err = stream.New(streamCfg)
	if err != nil {
		return fmt.Errorf("watcher streams: %w", err)
	}
	bridgeCfg := bridge.Config{
		Store:       h.store,
		DeviceRate:  h.cfg.DeviceRate,
		DeviceBurst: h.cfg.DeviceBurst,
		Logger:      h.log.With("component", "bridge"),
		Metrics:     h.metrics,
	}
	if h.cluster != nil {
		bridgeCfg.Forward = h.cluster.Forwarder()
	}
	h.bridge, err = bridge.New(bridgeCfg)
	if err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	h.commands, err = commands.New(commands.Config{
		Store:   h.store,
		Logger:  h.log.With("component", "commands"),
		Metrics: h.metrics,
	})
	if err != nil {
		return fmt.Errorf("commands: %w", err)
	}
	return nil
}

func (h *Hub) buildDevices() error {
	known, err := h.store.Devices()
	if err != nil {
		return fmt.Errorf("load devices: %w", err)
	}
	h.liveness, err = presence.New(presence.Config{
		Sink:    h.bridge,
		Records: storedPresence{h.store},
		Known:   presenceRecords(known),
		Resume:  h.resumesPresence,
		Timeout: h.cfg.DeviceTimeout,
		Logger:  h.log.With("component", "liveness"),
		Metrics: h.metrics,
	})
	if err != nil {
		return fmt.Errorf("liveness: %w", err)
	}
	wsCfg := devices.WSConfig{
		Bridge:     h.bridge,
		Presence:   h.liveness,
		MaxPayload: h.cfg.MaxPayload,
		Heartbeat:  h.cfg.HeartbeatInterval,
		Timeout:    h.cfg.DeviceTimeout,
		Commands:   h.commands,
		Logger:     h.log.With("component", "ws-devices"),
		Metrics:    h.metrics,
	}
	if h.secured {
		wsCfg.Authenticate = h.authenticateWS
	}
	h.wsDev, err = devices.NewWS(wsCfg)
	if err != nil {
		return fmt.Errorf("websocket devices: %w", err)
	}
	h.commands.Attach(h.wsDev)
	switch {
	case h.cfg.MQTTBroker != "":
		if err := h.buildExternal(); err != nil {
			return err
		}
		h.attachCluster()
		return nil
	case h.cfg.MQTTAddr != "":
		return h.buildBroker()
	}
	return nil
}

func (h *Hub) buildBroker() error {
	tlsCfg, err := h.tlsConfig()
	if err != nil {
		return err
	}
	brokerCfg := devices.BrokerConfig{
		Addr:       h.cfg.MQTTAddr,
		TLS:        tlsCfg,
		Bridge:     h.bridge,
		Presence:   h.liveness,
		MaxPayload: h.cfg.MaxPayload,
		Commands:   h.commands,
		Logger:     h.log.With("component", "mqtt"),
		Metrics:    h.metrics,
		Limits:     brokerLimits(h.cfg),
	}
	if h.secured {
		brokerCfg.Authenticate = h.auth.Device // username = device id, password = token
	}
	h.broker, err = devices.NewBroker(brokerCfg)
	if err != nil {
		return fmt.Errorf("embedded mqtt broker: %w", err)
	}
	h.commands.Attach(h.broker)
	return nil
}

func (h *Hub) buildExternal() error {
	clientID := h.cfg.MQTTClientID
	switch {
	case clientID != "":
	case h.cfg.Cluster != "":
		clientID = "telehub-" + h.cfg.Cluster + "-" + h.nodeID()
	default:
		clientID = "telehub-" + h.store.IDs().Identity()
	}
	var err error
	h.external, err = devices.NewExternal(devices.ExternalConfig{
		URL:        h.cfg.MQTTBroker,
		ClientID:   clientID,
		ShareGroup: h.cfg.MQTTShareGroup,
		Username:   h.cfg.MQTTUsername,
		Password:   h.cfg.MQTTPassword,
		Bridge:     h.bridge,
		Presence:   h.liveness,
		Commands:   h.commands,
		MaxPayload: h.cfg.MaxPayload,
		Logger:     h.log.With("component", "mqtt-external"),
		Metrics:    h.metrics,
		Peers:      h.peers(),
	})
	if err != nil {
		return fmt.Errorf("external mqtt broker: %w", err)
	}
	h.commands.Attach(h.external)
	return nil
}

// nodeID is this hub's name in its cluster: --node-id, or the store
// identity.
func (h *Hub) nodeID() string {
	if h.cfg.NodeID != "" {
		return h.cfg.NodeID
	}
	return h.store.IDs().Identity()
}

func (h *Hub) tlsConfig() (*tls.Config, error) {
	if h.cfg.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(h.cfg.TLSCert, h.cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// deviceClosers are the transports whose connections a device deletion
// closes: the WebSocket endpoint and the embedded broker when it runs.
// Devices of an external broker are connected to it, not to the hub.
func (h *Hub) deviceClosers() []api.DeviceCloser {
	closers := []api.DeviceCloser{h.wsDev}
	if h.broker != nil {
		closers = append(closers, h.broker)
	}
	return closers
}

func (h *Hub) buildHTTP() error {
	a, err := api.New(api.Config{
		Store:    h.store,
		Presence: h.liveness,
		Closers:  h.deviceClosers(),
		Ready:    h.ready,
		Auth:     h.auth,
		Revoker:  revoker{h},
		Commands: h.commands,
		Logger:   h.log.With("component", "api"),
	})
	if err != nil {
		return err
	}
	mux := newRouteMux()
	a.Register(mux)
	conns := h.connectionLimiter()
	mux.Handle("GET /v1/devices/{id}/ws", conns.Wrap(h.wsDev))
	mux.Handle("GET /v1/stream", conns.Wrap(http.HandlerFunc(h.fanout.ServeSSE)))
	mux.Handle("GET /v1/stream/ws", conns.Wrap(http.HandlerFunc(h.fanout.ServeWS)))
	mux.Handle("GET /metrics", promhttp.HandlerFor(h.metrics.Registry, promhttp.HandlerOpts{
		Registry: h.metrics.Registry, MaxRequestsInFlight: 4, Timeout: 10 * time.Second,
	}))
	mux.Handle("GET /{$}", web.Handler())
	mux.Handle("GET /assets/", web.Handler())
	h.routes = mux.patterns

	tlsCfg, err := h.tlsConfig()
	if err != nil {
		return err
	}
	h.httpLn, err = net.Listen("tcp", h.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	if tlsCfg != nil {
		h.httpLn = tls.NewListener(h.httpLn, tlsCfg)
	}
	h.server = &http.Server{
		Handler: httpx.Routes(mux.ServeMux),
		// No WriteTimeout: it would cut every stream. Streams set a
		// deadline per write instead.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
	}
	return h.buildDebug()
}

func (h *Hub) buildDebug() error {
	if h.cfg.DebugAddr == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	// Never the command line: it may carry tokens (--admin-token).
	mux.Handle("/debug/pprof/cmdline", http.NotFoundHandler())
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	var err error
	h.debugLn, err = net.Listen("tcp", h.cfg.DebugAddr)
	if err != nil {
		return fmt.Errorf("debug listener: %w", err)
	}
	h.debug = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return nil
}

// ready is /readyz: storage open and writing and, with an external broker,
// connected.
func (h *Hub) ready() error {
	if h.sup.stopping.Load() {
		return errors.New("shutting down")
	}
	if h.external != nil {
		if err := h.external.Ready(); err != nil {
			return fmt.Errorf("external MQTT broker: %w", err)
		}
	}
	if err := h.store.WriteErr(); err != nil {
		return fmt.Errorf("storage cannot write: %w", err)
	}
	return h.clusterReady()
}

// HTTPAddr returns the address the HTTP server listens on.
func (h *Hub) HTTPAddr() string { return h.httpLn.Addr().String() }

// MQTTAddr returns the address of the embedded broker, or "" when it does
// not run.
func (h *Hub) MQTTAddr() string {
	if h.broker == nil {
		return ""
	}
	return h.broker.Addr().String()
}

// Metrics returns the hub's collectors.
func (h *Hub) Metrics() *metrics.Metrics { return h.metrics }

// Start serves: the liveness engine, the MQTT side and HTTP. With an
// external broker it connects in the background (see /readyz). A part that
// fails while the hub runs is reported on Err; Run does all of this.
func (h *Hub) Start(ctx context.Context) error {
	if err := h.sup.start(ctx); err != nil {
		return err
	}
	if h.debug != nil {
		h.log.Info("pprof listening", "addr", h.debugLn.Addr().String())
	}
	h.log.Info("telehub listening", "http", h.HTTPAddr(), "mqtt", h.mqttDescription(), "data", h.cfg.DataDir,
		"credentials", h.secured, "version", Version)
	if exposed := h.cfg.Exposed(); h.cfg.Insecure && !h.secured && len(exposed) > 0 {
		h.log.Warn("--insecure: listening beyond loopback without credentials; anyone who reaches these ports can publish and watch",
			"addresses", strings.Join(exposed, ", "))
	}
	if h.debug != nil && !config.IsLoopback(h.cfg.DebugAddr) {
		h.log.Warn("the pprof debug server asks for no credentials: keep --debug-addr reachable from trusted networks only",
			"addr", h.debugLn.Addr().String())
	}
	return nil
}

// ShutdownTimeout bounds the shutdown Run does when it stops.
const ShutdownTimeout = 30 * time.Second

// Run starts the hub and serves until ctx is done or a part fails, then
// shuts the hub down, waiting at most ShutdownTimeout. It returns the
// failure and every error of the shutdown, joined: nil after a clean stop
// on ctx, even when ctx ended before the parts had started.
func (h *Hub) Run(ctx context.Context) error {
	failed := h.Start(ctx)
	switch {
	case failed != nil && ctx.Err() != nil:
		// Stopped while starting: a shutdown asked for, not a failure.
		h.log.Info("shutting down before the start completed")
		failed = nil
	case failed == nil:
		select {
		case <-ctx.Done():
			h.log.Info("shutting down")
		case failed = <-h.Err():
			h.log.Error("serving failed, shutting down", "err", failed)
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	return errors.Join(failed, h.Shutdown(shutdownCtx))
}

func (h *Hub) mqttDescription() string {
	switch {
	case h.external != nil:
		return "external " + h.cfg.MQTTBroker
	case h.broker != nil:
		return h.MQTTAddr()
	}
	return "off"
}

// Err returns a channel that receives the failure of a part while the hub
// runs: a server that stops serving, an external broker client that gives
// up.
func (h *Hub) Err() <-chan error { return h.sup.failures() }

// Shutdown stops the hub: no new connections, device connections and
// watchers closed (WebSocket 1001, SSE streams ended), MQTT stopped, and
// storage flushed and closed. It returns the errors of every part, joined;
// later calls return the same.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.stopOnce.Do(func() { h.stopErr = h.sup.stop(ctx) })
	return h.stopErr
}
