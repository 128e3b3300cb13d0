// Package config loads telehub's configuration from, in order of precedence,
// command-line flags, TELEHUB_* environment variables, a YAML file named by
// --config (or TELEHUB_CONFIG), and the defaults.
package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/telehub/telehub/internal/auth"
)

// Config is the whole configuration of one hub. Default returns the zero
// config telehub runs with; every field's doc names its flag.
type Config struct {
	// HTTPAddr (--http-addr): REST, watchers, WebSocket devices, dashboard.
	HTTPAddr string `yaml:"http_addr"`
	// MQTTAddr (--mqtt-addr): the embedded MQTT broker; empty disables it.
	MQTTAddr string `yaml:"mqtt_addr"`
	// MQTTBroker (--mqtt-broker): an external broker URL (tcp://host:port,
	// ssl://…, ws://…); when set, the embedded broker is not started.
	MQTTBroker string `yaml:"mqtt_broker"`
	// MQTTClientID (--mqtt-client-id): the hub's client id on the external
	// broker; its persistent session is kept under it. Default: "telehub-"
	// followed by the store identity.
	MQTTClientID string `yaml:"mqtt_client_id"`
	// MQTTShareGroup (--mqtt-share-group): subscribe through
	// $share/<group>/… so several hubs split one broker's device traffic.
	MQTTShareGroup string `yaml:"mqtt_share_group"`
	// Cluster (--cluster): the name of the cluster of hubs this hub joins,
	// which replicate each other through the external broker (MQTTBroker,
	// required with it); device id rule. Default "": a single hub.
	Cluster string `yaml:"cluster"`
	// NodeID (--node-id): this hub's name in its cluster, stable across
	// restarts (its persistent session and the origin of its events carry
	// it); device id rule. Default "": the store identity.
	NodeID string `yaml:"node_id"`
	// ClusterResumeMargin (--cluster-resume-margin): a watcher that resumes
	// with an event id minted by a peer hub replays from that id's commit
	// time minus this margin. Default 10s.
	ClusterResumeMargin time.Duration `yaml:"cluster_resume_margin"`
	// MQTTUsername and MQTTPassword (--mqtt-username, --mqtt-password): the
	// hub's credentials on the external broker.
	MQTTUsername string `yaml:"mqtt_username"`
	MQTTPassword string `yaml:"mqtt_password"`

	// DataDir (--data-dir): where telehub.db lives.
	DataDir string `yaml:"data_dir"`
	// Fsync (--fsync): fsync every group commit. false trades durability
	// for speed.
	Fsync bool `yaml:"fsync"`
	// MaxEvents and MaxAge (--max-events, --max-age): event retention.
	MaxEvents int           `yaml:"max_events"`
	MaxAge    time.Duration `yaml:"max_age"`
	// CommandRetention (--command-retention): how long a finished command
	// (succeeded, failed, expired, canceled) is kept after its last
	// change; its events follow the event retention. 0: MaxAge.
	CommandRetention time.Duration `yaml:"command_retention"`
	// MaxBytes (--max-bytes): the largest the data file may grow; at the
	// cap readings are refused as on a full disk. 0: no cap.
	MaxBytes int `yaml:"max_bytes"`

	// DeviceTimeout (--device-timeout): a device with nothing heard for this
	// long goes offline.
	DeviceTimeout time.Duration `yaml:"device_timeout"`
	// HeartbeatInterval (--heartbeat-interval): pings to devices and watchers.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// MaxPayload (--max-payload): bytes, WebSocket frames and MQTT payloads.
	MaxPayload int `yaml:"max_payload"`
	// DeviceRate (--device-rate): telemetry messages per second one device
	// may send; a WebSocket or embedded-broker device over it is read more
	// slowly, and through the external broker a message without seq over
	// it is refused with rate_limited. 0 means no limit.
	// Default 200: far above what a sensor sends, and above the 100 a
	// second of our load benchmarks, yet it stops one device from flooding
	// the log. DeviceBurst (--device-burst): messages at once before the
	// rate applies; 0 means twice the rate. Default 2000, ten seconds at
	// the default rate, so that a device resending what it stored while
	// offline is not slowed.
	DeviceRate  float64 `yaml:"device_rate"`
	DeviceBurst int     `yaml:"device_burst"`
	// MaxConnections (--max-connections): WebSocket devices and SSE and
	// WebSocket watchers connected at once; 0 means no cap. Default 10000.
	// MaxConnectionsPerAddress (--max-connections-per-address): the same
	// from one source address; 0 means no cap. Default 1000.
	MaxConnections           int `yaml:"max_connections"`
	MaxConnectionsPerAddress int `yaml:"max_connections_per_address"`
	// WatcherQueue (--watcher-queue): events a watcher may fall behind.
	WatcherQueue int `yaml:"watcher_queue"`
	// AllowedOrigins (--allowed-origin, repeatable): Origins allowed to open
	// watcher WebSockets from a browser, besides the hub's own host.
	AllowedOrigins []string `yaml:"allowed_origins"`

	// TLSCert and TLSKey (--tls-cert, --tls-key): serve HTTPS/WSS and MQTTS.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// Insecure (--insecure): allow listening beyond loopback without
	// credentials.
	Insecure bool `yaml:"insecure"`

	// AdminToken (--admin-token): the token of the admin API, plain or
	// "sha256:<hex>" of it. Default "": no admin API.
	AdminToken string `yaml:"admin_token"`
	// DeviceTokens (YAML only): device id -> its token, plain or
	// "sha256:<hex>". Default none.
	DeviceTokens map[string]string `yaml:"device_tokens"`
	// WatcherTokens (YAML only): watcher credentials with their topic
	// scopes. Default none.
	WatcherTokens []WatcherToken `yaml:"watcher_tokens"`
	// DebugAddr (--debug-addr): serve pprof there; empty disables it. It
	// obeys the loopback rule of the other listeners.
	DebugAddr string `yaml:"debug_addr"`

	// LogLevel (--log-level): debug, info, warn, error. LogFormat
	// (--log-format): text or json.
	LogLevel  string `yaml:"log_level"`
	LogFormat string `yaml:"log_format"`

	// The embedded broker's limits (their doc is README "Limits").
	// MQTTMaxClients (--mqtt-max-clients): clients connected at once.
	MQTTMaxClients int `yaml:"mqtt_max_clients"`
	// MQTTMaxClientsPerAddress (--mqtt-max-clients-per-address): MQTT
	// connections one source address may hold at once.
	MQTTMaxClientsPerAddress int `yaml:"mqtt_max_clients_per_address"`
	// MQTTMaxSessions (--mqtt-max-sessions): sessions kept, connected or
	// not; past it the one disconnected the longest is dropped.
	MQTTMaxSessions int `yaml:"mqtt_max_sessions"`
	// MQTTSessionExpiry (--mqtt-session-expiry): how long a persistent
	// session is kept after its client disconnects.
	MQTTSessionExpiry time.Duration `yaml:"mqtt_session_expiry"`
	// MQTTMaxQueued (--mqtt-max-queued): QoS 1 and 2 messages one session
	// may hold, unacknowledged or waiting for its client.
	MQTTMaxQueued int `yaml:"mqtt_max_queued"`
	// MQTTMaxQueuedBytes (--mqtt-max-queued-bytes): bytes of those per
	// session; MQTTMaxQueuedBytesTotal (--mqtt-max-queued-bytes-total): of
	// all sessions.
	MQTTMaxQueuedBytes      int `yaml:"mqtt_max_queued_bytes"`
	MQTTMaxQueuedBytesTotal int `yaml:"mqtt_max_queued_bytes_total"`
	// MQTTMaxSubscriptions (--mqtt-max-subscriptions): topic filters per
	// client.
	MQTTMaxSubscriptions int `yaml:"mqtt_max_subscriptions"`
	// MQTTMaxRetained (--mqtt-max-retained): retained messages in total;
	// MQTTMaxRetainedPerDevice (--mqtt-max-retained-per-device): under one
	// device's topics; MQTTMaxRetainedBytes (--mqtt-max-retained-bytes):
	// their bytes in total.
	MQTTMaxRetained          int `yaml:"mqtt_max_retained"`
	MQTTMaxRetainedPerDevice int `yaml:"mqtt_max_retained_per_device"`
	MQTTMaxRetainedBytes     int `yaml:"mqtt_max_retained_bytes"`
}

// WatcherToken is a watcher credential of the configuration.
type WatcherToken struct {
	// Name identifies the credential (device id rules); unique.
	Name string `yaml:"name"`
	// Token is plain or "sha256:<hex>"; unique among watchers.
	Token string `yaml:"token"`
	// Topics are the filters the watcher may watch within (one at least).
	Topics []string `yaml:"topics"`
	// Commands are the device-id patterns (a device id, "+" or "#") of
	// the devices the token may command. Default none.
	Commands []string `yaml:"commands"`
}

// Default ingest limits of one device (--device-rate, --device-burst).
const (
	DefaultDeviceRate  = 200
	DefaultDeviceBurst = 2000
)

// Default returns the configuration telehub runs with when nothing is
// configured.
func Default() Config {
	return Config{
		HTTPAddr:                 "127.0.0.1:8080",
		MQTTAddr:                 "127.0.0.1:1883",
		DataDir:                  "./data",
		Fsync:                    true,
		MaxEvents:                1_000_000,
		MaxAge:                   24 * time.Hour,
		DeviceTimeout:            45 * time.Second,
		HeartbeatInterval:        15 * time.Second,
		MaxPayload:               65536,
		DeviceRate:               DefaultDeviceRate,
		DeviceBurst:              DefaultDeviceBurst,
		MaxConnections:           10_000,
		MaxConnectionsPerAddress: 1000,
		WatcherQueue:             4096,
		ClusterResumeMargin:      DefaultClusterResumeMargin,
		LogLevel:                 "info",
		LogFormat:                "text",
		MQTTMaxClients:           10_000,
		MQTTMaxClientsPerAddress: 1000,
		MQTTMaxSessions:          20_000,
		MQTTSessionExpiry:        time.Hour,
		MQTTMaxQueued:            1000,
		MQTTMaxQueuedBytes:       1 << 20,
		MQTTMaxQueuedBytesTotal:  256 << 20,
		MQTTMaxSubscriptions:     100,
		MQTTMaxRetained:          10_000,
		MQTTMaxRetainedPerDevice: 100,
		MQTTMaxRetainedBytes:     64 << 20,
	}
}

// ErrInvalid is wrapped by every validation error of Validate.
var ErrInvalid = errors.New("invalid configuration")

// Validate checks the values, the credentials, and the loopback rule of
// the hub: without credentials it listens on loopback only, unless
// Insecure is set. Credentials are those of the configuration or, when it
// has none, a credentials file in the data directory.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	if c.HTTPAddr == "" {
		bad("http_addr is empty: give host:port, like 127.0.0.1:8080")
	}
	for _, a := range c.listenAddrs() {
		if err := checkListenAddr(a.value); err != nil {
			bad("%s %q %v", a.name, a.value, err)
		}
	}
	if c.DataDir == "" {
		bad("data_dir is empty")
	}
	if c.MaxEvents < 1 {
		bad("max_events must be at least 1, got %d", c.MaxEvents)
	}
	if c.MaxBytes < 0 {
		bad("max_bytes must not be negative, got %d", c.MaxBytes)
	}
	if c.MaxAge <= 0 {
		bad("max_age must be positive, got %s", c.MaxAge)
	}
	if c.CommandRetention < 0 {
		bad("command_retention must not be negative, got %s", c.CommandRetention)
	}
	if c.DeviceTimeout <= 0 {
		bad("device_timeout must be positive, got %s", c.DeviceTimeout)
	}
	if c.HeartbeatInterval <= 0 {
		bad("heartbeat_interval must be positive, got %s", c.HeartbeatInterval)
	}
	if c.MaxPayload < 64 || c.MaxPayload > 16<<20 {
		bad("max_payload must be between 64 bytes and 16MiB, got %s", FormatSize(c.MaxPayload))
	}
	if c.DeviceRate < 0 || math.IsNaN(c.DeviceRate) || math.IsInf(c.DeviceRate, 0) {
		bad("device_rate must be 0 (no limit) or a positive number, got %v", c.DeviceRate)
	}
	if c.DeviceBurst < 0 {
		bad("device_burst must not be negative, got %d", c.DeviceBurst)
	}
	if c.MaxConnections < 0 || c.MaxConnectionsPerAddress < 0 {
		bad("max_connections and max_connections_per_address must be 0 (no cap) or positive, got %d and %d", c.MaxConnections, c.MaxConnectionsPerAddress)
	}
	if c.WatcherQueue < 1 {
		bad("watcher_queue must be at least 1, got %d", c.WatcherQueue)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("tls_cert and tls_key go together")
	}
	if !oneOf(c.LogLevel, "debug", "info", "warn", "error") {
		bad("log_level must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if !oneOf(c.LogFormat, "text", "json") {
		bad("log_format must be text or json, got %q", c.LogFormat)
	}
	c.validateMQTTLimits(bad)
	c.validateBroker(bad)
	c.validateCluster(bad)
	if err := c.Credentials().Check(); err != nil {
		bad("credentials: %v", err)
	}
	if !c.Insecure && !c.HasCredentials() && !c.hasCredentialsFile() {
		for _, name := range c.Exposed() {
			bad("%s is not a loopback address: without credentials telehub listens on loopback only; configure credentials (admin_token, device_tokens, watcher_tokens) or pass --insecure to listen there anyway", name)
		}
	}
	return errors.Join(errs...)
}

// listenAddr is a listen address of the configuration and its key.
type listenAddr struct{ name, value string }

// listenAddrs returns the listen addresses the hub will use: HTTP, the
// embedded broker's when it runs, and the debug server's when set.
func (c Config) listenAddrs() []listenAddr {
	out := []listenAddr{}
	if c.HTTPAddr != "" {
		out = append(out, listenAddr{"http_addr", c.HTTPAddr})
	}
	if c.MQTTAddr != "" && c.MQTTBroker == "" {
		out = append(out, listenAddr{"mqtt_addr", c.MQTTAddr})
	}
	if c.DebugAddr != "" {
		out = append(out, listenAddr{"debug_addr", c.DebugAddr})
	}
	return out
}

// checkListenAddr says what is wrong with a listen address, as the end of
// a sentence that starts with the address.
func checkListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	switch {
	case err != nil && strings.Count(addr, ":") == 0:
		return fmt.Errorf("has no port: give host:port, like 127.0.0.1:8080, or :8080 for every interface")
	case err != nil:
		return fmt.Errorf("is not host:port (an IPv6 host goes in brackets, like [::1]:8080)")
	case port == "":
		return fmt.Errorf("has no port after the colon: give host:port, like %s", net.JoinHostPort(host, "8080"))
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("has port %q: a port is a number from 0 to 65535 (0 picks a free one)", port)
	}
	return nil
}

// HasCredentials reports whether the configuration gives any credential:
// an admin token, a device token or a watcher token.
func (c Config) HasCredentials() bool {
	return c.AdminToken != "" || len(c.DeviceTokens) > 0 || len(c.WatcherTokens) > 0
}

// Exposed names the listen addresses that are not loopback (HTTP, the
// embedded broker when it runs, the debug server when set), as
// "http_addr \"0.0.0.0:8080\"". Addresses that do not parse are left to
// Validate.
func (c Config) Exposed() []string {
	var out []string
	for _, a := range c.listenAddrs() {
		if checkListenAddr(a.value) == nil && !IsLoopback(a.value) {
			out = append(out, fmt.Sprintf("%s %q", a.name, a.value))
		}
	}
	return out
}

// CredentialsPath is the credentials file of the admin API:
// <data-dir>/credentials.json.
func (c Config) CredentialsPath() string { return filepath.Join(c.DataDir, auth.FileName) }

// hasCredentialsFile reports whether the data directory holds a
// credentials file. It lets the hub start beyond loopback on credentials
// issued through the admin API; the hub then checks that the file really
// holds some.
func (c Config) hasCredentialsFile() bool {
	st, err := os.Stat(c.CredentialsPath())
	return err == nil && st.Mode().IsRegular()
}

// Credentials returns the credentials of the configuration as the auth
// package takes them, with the credentials file at CredentialsPath. The
// logger is left for the caller to set.
func (c Config) Credentials() auth.Config {
	watchers := make([]auth.WatcherConfig, len(c.WatcherTokens))
	for i, w := range c.WatcherTokens {
		watchers[i] = auth.WatcherConfig{Name: w.Name, Token: w.Token, Topics: w.Topics, Commands: w.Commands}
	}
	return auth.Config{Path: c.CredentialsPath(), AdminToken: c.AdminToken, Devices: c.DeviceTokens, Watchers: watchers}
}

// IsLoopback reports whether the listen address addr (host:port) binds to
// loopback only. An empty host means every interface.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func oneOf(s string, options ...string) bool {
	for _, o := range options {
		if s == o {
			return true
		}
	}
	return false
}
