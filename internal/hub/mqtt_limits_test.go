package hub

import (
	"testing"

	"github.com/telehub/telehub/devices"
	"github.com/telehub/telehub/internal/config"
)

// The configuration's default broker limits are the broker's own.
func TestBrokerLimitsDefaultsAgree(t *testing.T) {
	want := devices.BrokerLimits{
		MaxClients: devices.DefaultMQTTMaxClients, MaxClientsPerAddress: devices.DefaultMQTTMaxClientsPerAddress,
		MaxSessions:   devices.DefaultMQTTMaxSessions,
		SessionExpiry: devices.DefaultMQTTSessionExpiry, MaxQueued: devices.DefaultMQTTMaxQueued,
		MaxQueuedBytes: devices.DefaultMQTTMaxQueuedBytes, MaxQueuedBytesTotal: devices.DefaultMQTTMaxQueuedBytesTotal,
		MaxSubscriptions: devices.DefaultMQTTMaxSubscriptions, MaxRetained: devices.DefaultMQTTMaxRetained,
		MaxRetainedPerDevice: devices.DefaultMQTTMaxRetainedPerDevice, MaxRetainedBytes: devices.DefaultMQTTMaxRetainedBytes,
	}
	if got := brokerLimits(config.Default()); got != want {
		t.Fatalf("config defaults %+v, broker defaults %+v", got, want)
	}
}
