package devices

import (
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// A device deleted while connected over MQTT is disconnected without its
// will, and a delayed will of an earlier connection on its topics is
// dropped: published after the deletion, either would create the device
// anew. A revoked device's connection still sends its will.
func TestBrokerCloseDeviceDropsWills(t *testing.T) {
	for _, tt := range []struct {
		name  string
		close func(b *mqttTestBroker, device string) int
		want  string // the presence event of the disconnect
		kept  bool   // whether the earlier connection's delayed will still waits
	}{
		{"deleted", func(b *mqttTestBroker, d string) int { return b.CloseDevice(d) }, "offline d1 1 disconnect", false},
		{"revoked", func(b *mqttTestBroker, d string) int { return b.Revoke(d) }, "offline d1 1 will", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := startMQTTBroker(t, nil)
			addr := b.Addr().String()
			earlier := reviewDial(t, addr, reviewWill{version: 5, id: "d1-earlier", topic: "devices/d1/status", delay: 3600})
			earlier.next() // CONNACK
			_ = earlier.conn.Close()
			waitFor(t, "the earlier connection's will to wait", func() bool { return b.willPending("d1-earlier") })

			c := mustDialMQTT(t, addr, func(o *paho.ClientOptions) {
				o.SetWill("devices/d1/status", "offline", 1, false)
			})
			c.publish(t, "devices/d1/status", 1, "online")
			b.live.expect(t, "online d1 1 message")

			if n := tt.close(b, "d1"); n != 1 {
				t.Fatalf("%d connections closed, want 1", n)
			}
			b.live.expect(t, tt.want)
			b.waitConns(t, 0)
			b.live.none(t)
			if got := b.willPending("d1-earlier"); got != tt.kept {
				t.Fatalf("the earlier connection's delayed will waits: %v, want %v", got, tt.kept)
			}
		})
	}
}
