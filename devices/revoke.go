package devices

import (
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// closeRevoked is the WebSocket close code of a device connection whose
// token was revoked.
const closeRevoked = 4003

// Revoke closes the device's current WebSocket connection with close code
// 4003 "revoked", for a device whose token was revoked, and returns how
// many connections it closed (0 or 1). The end is reported to the presence
// tracker as any other disconnect.
func (s *WS) Revoke(device string) int {
	s.mu.Lock()
	c := s.devices[device]
	s.mu.Unlock()
	if c == nil {
		return 0
	}
	c.close(closeRevoked, "revoked", time.Now().Add(wsCloseTimeout))
	return 1
}

// Revoke disconnects every MQTT client that logged in as device, for a
// device whose token was revoked: an MQTT 5 client gets a DISCONNECT with
// reason 0x87 not authorized, an MQTT 3 client sees its connection
// closed. It returns how many clients it disconnected.
func (b *Broker) Revoke(device string) int {
	n := 0
	for _, cl := range b.server.Clients.GetAll() {
		if cl.Net.Inline || string(cl.Properties.Username) != device || cl.Closed() {
			continue
		}
		_ = b.server.DisconnectClient(cl, packets.ErrNotAuthorized) // the reason code itself, by design
		n++
	}
	return n
}
