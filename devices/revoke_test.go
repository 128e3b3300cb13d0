package devices

import (
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Revoking a device disconnects its MQTT clients: an MQTT 5 client gets
// DISCONNECT 0x87 not authorized, an MQTT 3.1.1 client sees its
// connection closed; another device's client stays.
func TestBrokerRevokeDisconnectsTheDevice(t *testing.T) {
	b := startMQTTBroker(t, func(c *BrokerConfig) {
		c.Authenticate = func(u, p string) bool { return p == "secret-"+u }
	})
	addr := b.Addr().String()
	v5, ack := dialRaw(t, addr, rawConnect{version: 5, id: "dev-a-5", user: "dev-a", pass: "secret-dev-a", clean: true})
	if ack.ReasonCode != 0 {
		t.Fatalf("CONNACK 0x%02x", ack.ReasonCode)
	}
	v4, _ := dialRaw(t, addr, rawConnect{version: 4, id: "dev-a-4", user: "dev-a", pass: "secret-dev-a", clean: true})
	other, _ := dialRaw(t, addr, rawConnect{version: 5, id: "dev-b", user: "dev-b", pass: "secret-dev-b", clean: true})
	b.waitConns(t, 3)

	if n := b.Revoke("dev-a"); n != 2 {
		t.Fatalf("Revoke disconnected %d clients, want 2", n)
	}
	got := v5.closed()
	if len(got) != 1 || got[0].FixedHeader.Type != packets.Disconnect || got[0].ReasonCode != packets.ErrNotAuthorized.Code {
		t.Fatalf("MQTT 5 client got %v before the close, want DISCONNECT 0x87", got)
	}
	v4.closed()
	b.waitConns(t, 1)
	other.subscribe(1, "devices/dev-b/errors")
	if pk := other.next(); pk.FixedHeader.Type != packets.Suback {
		t.Fatalf("the other device got %s, want SUBACK: still connected", packets.PacketNames[pk.FixedHeader.Type])
	}
}
