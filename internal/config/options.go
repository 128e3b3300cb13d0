package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// option is one setting reachable as a flag, an environment variable and a
// YAML key.
type option struct {
	name  string // flag name; the variable is TELEHUB_ + NAME with - as _
	key   string // YAML key (the yaml tag of its Config field)
	kind  string // what the value is, as --help shows it; "" for a boolean
	usage string
	set   func(c *Config, s string) error
	show  func(c *Config) string // the value as a flag would give it
	reset func(c *Config)        // lists only: empty the list before a source of higher precedence sets it
}

func (o option) env() string {
	return "TELEHUB_" + strings.ToUpper(strings.ReplaceAll(o.name, "-", "_"))
}

func (o option) isBool() bool { return o.kind == "" }

// emptyAllowed says whether an empty value is a value of the option (an
// empty address disables its listener, an empty list clears it) rather
// than a mistake.
func (o option) emptyAllowed() bool {
	switch o.kind {
	case "", "int", "size", "number", "duration":
		return false
	}
	return true
}

// yamlKey is the YAML key of a flag name: dashes become underscores.
func yamlKey(name string) string { return strings.ReplaceAll(name, "-", "_") }

func str(name, kind, usage string, field func(*Config) *string) option {
	return option{name: name, key: yamlKey(name), kind: kind, usage: usage,
		set: func(c *Config, s string) error {
			*field(c) = s
			return nil
		},
		show: func(c *Config) string { return *field(c) },
	}
}

// address is a listen address option: host:port, checked by Validate.
func address(name, usage string, field func(*Config) *string) option {
	return str(name, "host:port", usage, field)
}

func boolean(name, usage string, field func(*Config) *bool) option {
	return option{name: name, key: yamlKey(name), usage: usage,
		set: func(c *Config, s string) error {
			v, err := strconv.ParseBool(s)
			if err != nil {
				return fmt.Errorf("%q is not a boolean: use true or false", s)
			}
			*field(c) = v
			return nil
		},
		show: func(c *Config) string { return strconv.FormatBool(*field(c)) },
	}
}

func integer(name, usage string, field func(*Config) *int) option {
	return option{name: name, key: yamlKey(name), kind: "int", usage: usage,
		set: func(c *Config, s string) error {
			v, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
			if err != nil {
				return fmt.Errorf("%q is not a whole number like 4096", s)
			}
			*field(c) = v
			return nil
		},
		show: func(c *Config) string { return strconv.Itoa(*field(c)) },
	}
}

// size is a number of bytes, given plain or with a unit (64KiB, 1MiB).
func size(name, usage string, field func(*Config) *int) option {
	return option{name: name, key: yamlKey(name), kind: "size", usage: usage,
		set: func(c *Config, s string) error {
			v, err := ParseSize(s)
			if err != nil {
				return err
			}
			*field(c) = v
			return nil
		},
		show: func(c *Config) string { return FormatSize(*field(c)) },
	}
}

func float(name, usage string, field func(*Config) *float64) option {
	return option{name: name, key: yamlKey(name), kind: "number", usage: usage,
		set: func(c *Config, s string) error {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return fmt.Errorf("%q is not a number like 10 or 0.5", s)
			}
			*field(c) = v
			return nil
		},
		show: func(c *Config) string { return strconv.FormatFloat(*field(c), 'g', -1, 64) },
	}
}

func duration(name, usage string, field func(*Config) *time.Duration) option {
	return option{name: name, key: yamlKey(name), kind: "duration", usage: usage,
		set: func(c *Config, s string) error {
			v, err := time.ParseDuration(s)
			if err != nil {
				return fmt.Errorf("%q is not a duration like 45s (units ms, s, m, h)", s)
			}
			*field(c) = v
			return nil
		},
		show: func(c *Config) string { return FormatDuration(*field(c)) },
	}
}

// list options take one value per flag (repeatable) or a comma-separated
// environment variable; in YAML they are a list under the plural key.
func list(name, usage string, field func(*Config) *[]string) option {
	return option{name: name, key: yamlKey(name) + "s", kind: "list", usage: usage,
		set: func(c *Config, s string) error {
			for _, v := range strings.Split(s, ",") {
				if v = strings.TrimSpace(v); v != "" {
					*field(c) = append(*field(c), v)
				}
			}
			return nil
		},
		show:  func(c *Config) string { return strings.Join(*field(c), ",") },
		reset: func(c *Config) { *field(c) = []string{} },
	}
}

var options = []option{
	address("http-addr", "HTTP listen address (REST, watchers, WebSocket devices, dashboard); port 0 picks a free port", func(c *Config) *string { return &c.HTTPAddr }),
	address("mqtt-addr", "embedded MQTT broker listen address; empty disables the broker", func(c *Config) *string { return &c.MQTTAddr }),
	str("mqtt-broker", "URL", "external MQTT broker URL (tcp://host:port, ssl://host:port); disables the embedded broker", func(c *Config) *string { return &c.MQTTBroker }),
	str("mqtt-client-id", "string", "client id on the external broker; empty means telehub-<store identity>, or telehub-<cluster>-<node> with --cluster", func(c *Config) *string { return &c.MQTTClientID }),
	str("mqtt-share-group", "string", "external broker: subscribe through $share/<group>/ to split devices among hubs (each holds a part; excludes --cluster)", func(c *Config) *string { return &c.MQTTShareGroup }),
	str("cluster", "name", "join the cluster NAME of hubs that replicate each other through --mqtt-broker (device id rule); empty: a single hub", func(c *Config) *string { return &c.Cluster }),
	str("node-id", "name", "this hub's name in its cluster (device id rule); empty means the store identity", func(c *Config) *string { return &c.NodeID }),
	duration("cluster-resume-margin", "cluster: a watcher resuming with a peer hub's id replays from that id's commit time minus this margin", func(c *Config) *time.Duration { return &c.ClusterResumeMargin }),
	str("mqtt-username", "string", "username on the external broker", func(c *Config) *string { return &c.MQTTUsername }),
	str("mqtt-password", "string", "password on the external broker", func(c *Config) *string { return &c.MQTTPassword }),
	str("data-dir", "path", "data directory (holds telehub.db and credentials.json)", func(c *Config) *string { return &c.DataDir }),
	boolean("fsync", "fsync every group commit; false trades durability for speed", func(c *Config) *bool { return &c.Fsync }),
	integer("max-events", "retained events at most", func(c *Config) *int { return &c.MaxEvents }),
	duration("max-age", "retained events at most this old", func(c *Config) *time.Duration { return &c.MaxAge }),
	duration("command-retention", "finished commands are kept this long after their last change (0: --max-age)", func(c *Config) *time.Duration { return &c.CommandRetention }),
	size("max-bytes", "largest the data file may grow, in bytes; at the cap readings are refused as on a full disk (0: no cap)", func(c *Config) *int { return &c.MaxBytes }),
	duration("device-timeout", "a device with nothing heard for this long goes offline", func(c *Config) *time.Duration { return &c.DeviceTimeout }),
	duration("heartbeat-interval", "pings to devices and watchers", func(c *Config) *time.Duration { return &c.HeartbeatInterval }),
	size("max-payload", "largest WebSocket frame or MQTT payload, in bytes (64 to 16MiB)", func(c *Config) *int { return &c.MaxPayload }),
	float("device-rate", "telemetry messages per second one device may send; 0 means no limit", func(c *Config) *float64 { return &c.DeviceRate }),
	integer("device-burst", "messages a device may send at once before --device-rate applies (0: twice the rate)", func(c *Config) *int { return &c.DeviceBurst }),
	integer("max-connections", "WebSocket devices and SSE/WebSocket watchers connected at once; 0 means no cap", func(c *Config) *int { return &c.MaxConnections }),
	integer("max-connections-per-address", "the same from one source address; 0 means no cap", func(c *Config) *int { return &c.MaxConnectionsPerAddress }),
	integer("watcher-queue", "events a watcher may fall behind before it is disconnected", func(c *Config) *int { return &c.WatcherQueue }),
	list("allowed-origin", "Origin allowed to open watcher WebSockets (repeatable; comma-separated in the environment)", func(c *Config) *[]string { return &c.AllowedOrigins }),
	str("tls-cert", "path", "TLS certificate file (HTTPS/WSS and MQTTS); needs --tls-key", func(c *Config) *string { return &c.TLSCert }),
	str("tls-key", "path", "TLS key file", func(c *Config) *string { return &c.TLSKey }),
	boolean("insecure", "allow listening beyond loopback without credentials (logs a warning)", func(c *Config) *bool { return &c.Insecure }),
	str("admin-token", "token", "admin API token, plain or sha256:<hex> (prefer the environment or the file: command lines are visible to other users)", func(c *Config) *string { return &c.AdminToken }),
	address("debug-addr", "serve pprof on this address; empty disables it", func(c *Config) *string { return &c.DebugAddr }),
	str("log-level", "level", "debug, info, warn or error", func(c *Config) *string { return &c.LogLevel }),
	str("log-format", "format", "text or json", func(c *Config) *string { return &c.LogFormat }),
	integer("mqtt-max-clients", "embedded broker: clients connected at once", func(c *Config) *int { return &c.MQTTMaxClients }),
	integer("mqtt-max-clients-per-address", "embedded broker: connections one source address may hold at once", func(c *Config) *int { return &c.MQTTMaxClientsPerAddress }),
	integer("mqtt-max-sessions", "embedded broker: sessions kept, connected or not (the one disconnected the longest goes first)", func(c *Config) *int { return &c.MQTTMaxSessions }),
	duration("mqtt-session-expiry", "embedded broker: how long a persistent session outlives its connection", func(c *Config) *time.Duration { return &c.MQTTSessionExpiry }),
	integer("mqtt-max-queued", "embedded broker: QoS 1/2 messages one session may hold (in flight and queued)", func(c *Config) *int { return &c.MQTTMaxQueued }),
	size("mqtt-max-queued-bytes", "embedded broker: bytes of queued messages per session", func(c *Config) *int { return &c.MQTTMaxQueuedBytes }),
	size("mqtt-max-queued-bytes-total", "embedded broker: bytes of queued messages of all sessions", func(c *Config) *int { return &c.MQTTMaxQueuedBytesTotal }),
	integer("mqtt-max-subscriptions", "embedded broker: topic filters per client", func(c *Config) *int { return &c.MQTTMaxSubscriptions }),
	integer("mqtt-max-retained", "embedded broker: retained messages in total", func(c *Config) *int { return &c.MQTTMaxRetained }),
	integer("mqtt-max-retained-per-device", "embedded broker: retained messages under one device's topics", func(c *Config) *int { return &c.MQTTMaxRetainedPerDevice }),
	size("mqtt-max-retained-bytes", "embedded broker: bytes of retained messages in total", func(c *Config) *int { return &c.MQTTMaxRetainedBytes }),
}

// optionByName returns the option of a flag name.
func optionByName(name string) (option, bool) {
	for _, o := range options {
		if o.name == name {
			return o, true
		}
	}
	return option{}, false
}

// optionByKey returns the option of a YAML key.
func optionByKey(key string) (option, bool) {
	for _, o := range options {
		if o.key == key {
			return o, true
		}
	}
	return option{}, false
}

// FormatDuration writes d as a flag would take it, without zero units:
// 24h, 1m30s, 45s.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
