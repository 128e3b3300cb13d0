package config

import (
	"math"
	"time"
)

// validateMQTTLimits reports every limit of the embedded broker that is
// out of range through bad.
func (l Config) validateMQTTLimits(bad func(format string, args ...any)) {
	for _, v := range []struct {
		key string
		n   int
	}{
		{"mqtt_max_clients", l.MQTTMaxClients},
		{"mqtt_max_clients_per_address", l.MQTTMaxClientsPerAddress}, {"mqtt_max_sessions", l.MQTTMaxSessions},
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
