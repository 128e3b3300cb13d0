package devices

import (
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// WebSocket close codes of a device connection the hub ends on an
// operator's request.
const (
	closeDeleted = 4001 // the device was deleted
	closeRevoked = 4003 // the device's token was revoked
)

// CloseDevice closes the device's current WebSocket connection with close
// code 4001 "deleted" and returns how many connections it closed (0 or 1).
// The connection's end is reported to the presence tracker as usual.
func (s *WS) CloseDevice(device string) int {
	return s.closeDevice(device, closeDeleted, "deleted")
}

// Revoke closes the device's current WebSocket connection with close code
// 4003 "revoked", for a device whose token was revoked, and returns how
// many connections it closed (0 or 1). The end is reported to the presence
// tracker as any other disconnect.
func (s *WS) Revoke(device string) int {
	return s.closeDevice(device, closeRevoked, "revoked")
}

func (s *WS) closeDevice(device string, code uint16, reason string) int {
	s.mu.Lock()
	c := s.devices[device]
	s.mu.Unlock()
	if c == nil {
		return 0
	}
	c.close(code, reason, time.Now().Add(wsCloseTimeout))
	return 1
}

// CloseDevice disconnects every MQTT connection that belongs to device
// (an MQTT 5 client gets a DISCONNECT with reason 0x98, administrative
// action; an MQTT 3 client sees its connection closed) and returns how
// many it disconnected. The device is being deleted: those connections
// end without their wills, and a delayed will of a connection that ended
// before is dropped if it would publish on device's topics, since a
// will published after the deletion would create the device anew.
func (b *Broker) CloseDevice(device string) int {
	owned := b.owned(device)
	b.sessions.dropWills(owned, func(pk packets.Packet) bool {
		r, _ := parseDeviceTopic(pk.TopicName)
		return r.device == device
	})
	return b.disconnect(owned, packets.ErrAdministrativeAction)
}

// Revoke disconnects every MQTT connection that belongs to device, for a
// device whose token was revoked: an MQTT 5 client gets a DISCONNECT with
// reason 0x87 not authorized, an MQTT 3 client sees its connection
// closed. It returns how many it disconnected. Their wills are sent.
func (b *Broker) Revoke(device string) int {
	return b.disconnect(b.owned(device), packets.ErrNotAuthorized)
}

// owned returns the connections whose owner is device.
func (b *Broker) owned(device string) []*mqtt.Client {
	var owned []*mqtt.Client
	b.hook.conns.Range(func(k, v any) bool {
		if owner := v.(*mqttConn).owner.Load(); owner != nil && *owner == device {
			owned = append(owned, k.(*mqtt.Client))
		}
		return true
	})
	return owned
}

// disconnect disconnects clients with the reason code why and returns
// how many.
func (b *Broker) disconnect(clients []*mqtt.Client, why packets.Code) int {
	for _, cl := range clients {
		disconnectClient(b.server, cl, why) // the reason code itself, by design
	}
	return len(clients)
}
