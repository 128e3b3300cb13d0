package config

import (
	"math"
	"time"
)

// MQTTLimits bound what clients and sessions may hold in the embedded MQTT
// broker (its options are flags, TELEHUB_* variables and top-level YAML
// keys like the others). The broker applies them as given.
type MQTTLimits struct {
	// MQTTMaxClients (--mqtt-max-clients): clients connected at once.
	MQTTMaxClients int `yaml:"mqtt_max_clients"`
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

// DefaultMQTTLimits are the limits telehub runs with.
func DefaultMQTTLimits() MQTTLimits {
	return MQTTLimits{
		MQTTMaxClients:           10_000,
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

// mqttOptions are the options of MQTTLimits.
var mqttOptions = []option{
	integer("mqtt-max-clients", "embedded broker: clients connected at once", func(c *Config) *int { return &c.MQTTMaxClients }),
	integer("mqtt-max-sessions", "embedded broker: sessions kept, connected or not (the one disconnected the longest goes first)", func(c *Config) *int { return &c.MQTTMaxSessions }),
	duration("mqtt-session-expiry", "embedded broker: how long a persistent session outlives its connection", func(c *Config) *time.Duration { return &c.MQTTSessionExpiry }),
	integer("mqtt-max-queued", "embedded broker: QoS 1/2 messages one session may hold (in flight and queued)", func(c *Config) *int { return &c.MQTTMaxQueued }),
	integer("mqtt-max-queued-bytes", "embedded broker: bytes of queued messages per session", func(c *Config) *int { return &c.MQTTMaxQueuedBytes }),
	integer("mqtt-max-queued-bytes-total", "embedded broker: bytes of queued messages of all sessions", func(c *Config) *int { return &c.MQTTMaxQueuedBytesTotal }),
	integer("mqtt-max-subscriptions", "embedded broker: topic filters per client", func(c *Config) *int { return &c.MQTTMaxSubscriptions }),
	integer("mqtt-max-retained", "embedded broker: retained messages in total", func(c *Config) *int { return &c.MQTTMaxRetained }),
	integer("mqtt-max-retained-per-device", "embedded broker: retained messages under one device's topics", func(c *Config) *int { return &c.MQTTMaxRetainedPerDevice }),
	integer("mqtt-max-retained-bytes", "embedded broker: bytes of retained messages in total", func(c *Config) *int { return &c.MQTTMaxRetainedBytes }),
}

// validate reports every limit out of range through bad.
func (l MQTTLimits) validate(bad func(format string, args ...any)) {
	for _, v := range []struct {
		key string
		n   int
	}{
		{"mqtt_max_clients", l.MQTTMaxClients}, {"mqtt_max_sessions", l.MQTTMaxSessions},
		{"mqtt_max_queued", l.MQTTMaxQueued}, {"mqtt_max_queued_bytes", l.MQTTMaxQueuedBytes},
		{"mqtt_max_queued_bytes_total", l.MQTTMaxQueuedBytesTotal},
		{"mqtt_max_subscriptions", l.MQTTMaxSubscriptions}, {"mqtt_max_retained", l.MQTTMaxRetained},
		{"mqtt_max_retained_per_device", l.MQTTMaxRetainedPerDevice},
		{"mqtt_max_retained_bytes", l.MQTTMaxRetainedBytes},
	} {
		if v.n < 1 {
			bad("%s must be at least 1, got %d", v.key, v.n)
		}
	}
	if l.MQTTMaxQueued > math.MaxUint16 {
		bad("mqtt_max_queued must be at most %d (MQTT packet ids), got %d", math.MaxUint16, l.MQTTMaxQueued)
	}
	if l.MQTTSessionExpiry < time.Second || l.MQTTSessionExpiry > math.MaxUint32*time.Second {
		bad("mqtt_session_expiry must be between 1s and %s, got %s", math.MaxUint32*time.Second, l.MQTTSessionExpiry)
	}
}
