package devices

import (
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// closeDeleted is the WebSocket close code of a connection whose device
// was deleted.
const closeDeleted = 4001

// CloseDevice closes the device's current WebSocket connection with close
// code 4001 "deleted" and returns how many connections it closed (0 or 1).
// The connection's end is reported to the presence tracker as usual.
func (s *WS) CloseDevice(device string) int {
	s.mu.Lock()
	c := s.devices[device]
	s.mu.Unlock()
	if c == nil {
		return 0
	}
	c.close(closeDeleted, "deleted", time.Now().Add(wsCloseTimeout))
	return 1
}

// CloseDevice disconnects every MQTT connection that belongs to device
// (an MQTT 5 client gets a DISCONNECT with reason 0x98, administrative
// action; an MQTT 3 client sees its connection closed) and returns how
// many it disconnected.
func (b *Broker) CloseDevice(device string) int {
	var owned []*mqtt.Client
	b.hook.conns.Range(func(k, v any) bool {
		if owner := v.(*mqttConn).owner.Load(); owner != nil && *owner == device {
			owned = append(owned, k.(*mqtt.Client))
		}
		return true
	})
	for _, cl := range owned {
		_ = b.server.DisconnectClient(cl, packets.ErrAdministrativeAction) // the code itself, by design
	}
	return len(owned)
}
