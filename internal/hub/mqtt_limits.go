package hub

import (
	"github.com/telehub/telehub/devices"
	"github.com/telehub/telehub/internal/config"
)

// brokerLimits are the embedded broker's limits of the configuration.
func brokerLimits(l config.Config) devices.BrokerLimits {
	return devices.BrokerLimits{
		MaxClients:           l.MQTTMaxClients,
		MaxClientsPerAddress: l.MQTTMaxClientsPerAddress,
		MaxSessions:          l.MQTTMaxSessions,
		SessionExpiry:        l.MQTTSessionExpiry,
		MaxQueued:            l.MQTTMaxQueued,
		MaxQueuedBytes:       l.MQTTMaxQueuedBytes,
		MaxQueuedBytesTotal:  l.MQTTMaxQueuedBytesTotal,
		MaxSubscriptions:     l.MQTTMaxSubscriptions,
		MaxRetained:          l.MQTTMaxRetained,
		MaxRetainedPerDevice: l.MQTTMaxRetainedPerDevice,
		MaxRetainedBytes:     l.MQTTMaxRetainedBytes,
	}
}
