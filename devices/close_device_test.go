package devices

import (
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
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

// Deleting a device whose client stopped reading, with its writer stuck
// in a write, returns: the DISCONNECT waits for that write at most a
// second, and the connection is closed.
func TestBrokerCloseDeviceOfStuckClient(t *testing.T) {
	reviewOnPaths(t, func(t *testing.T) {
		b := startMQTTBroker(t, nil)
		stuck := reviewStuckClient(t, b, "stuck")
		stuck.publish("devices/d9/status", 0, 0, []byte("online"), packets.Properties{}) // the client is d9's
		b.live.expect(t, "online d9 1 message")

		closed := make(chan int, 1)
		go func() { closed <- b.CloseDevice("d9") }()
		select {
		case n := <-closed:
			if n != 1 {
				t.Fatalf("%d connections closed, want 1", n)
			}
		case <-time.After(waitGuard):
			t.Fatalf("CloseDevice of a client stuck in a write did not return within %v", waitGuard)
		}
		b.live.expect(t, "offline d9 1 disconnect")
		waitFor(t, "the stuck connection to close", func() bool { return b.reviewListenerConns() == 1 })
	})
}
