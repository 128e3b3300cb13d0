package devices

import (
	"fmt"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/telehub/telehub/bridge"
)

// recordingCommander is a Commander that records the answers it is given.
type recordingCommander struct{ answers chan bridge.CommandAnswer }

func (*recordingCommander) Connected(string) {}

func (c *recordingCommander) Answer(_ string, a bridge.CommandAnswer) error {
	c.answers <- a
	return nil
}

// A device's own QoS 1 publish whose packet id equals that of a command
// publish the device has not acknowledged yet does not confirm the
// command: the two ids are of different numberings. The device's PUBACK
// does.
func TestBrokerCommandConfirmedOnlyByTheDevicePuback(t *testing.T) {
	cmd := &recordingCommander{answers: make(chan bridge.CommandAnswer, 4)}
	b := startMQTTBroker(t, func(c *BrokerConfig) { c.Commands = cmd })
	dev, _ := dialRaw(t, b.Addr().String(), rawConnect{version: 4, id: "d1", clean: true})
	dev.subscribe(1, "devices/d1/commands")
	dev.nextOf(packets.Suback)

	const id = "00000000000000c1"
	if !b.SendCommand("d1", &bridge.Command{ID: id, Device: "d1", Name: "ping", Expires: time.Unix(1, 0)}) {
		t.Fatal("command not published")
	}
	sent := dev.nextOf(packets.Publish) // left unacknowledged for now

	dev.publish("devices/d1/heartbeat", 1, sent.PacketID, []byte("x"), packets.Properties{})
	if ack := dev.nextOf(packets.Puback); ack.PacketID != sent.PacketID {
		t.Fatalf("PUBACK id %d, want %d", ack.PacketID, sent.PacketID)
	}
	// The broker handles a client's packets in order: once it answered the
	// PINGREQ, it is done with the heartbeat.
	if _, err := dev.conn.Write([]byte{packets.Pingreq << 4, 0}); err != nil {
		t.Fatal(err)
	}
	dev.nextOf(packets.Pingresp)
	select {
	case a := <-cmd.answers:
		t.Fatalf("command confirmed by the device's own publish: %+v", a)
	default:
	}

	dev.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: sent.PacketID})
	select {
	case a := <-cmd.answers:
		if a.ID != id {
			t.Fatalf("confirmed %q, want %q", a.ID, id)
		}
	case <-time.After(waitGuard):
		t.Fatal("the device's PUBACK confirmed nothing")
	}
}

// A will on a device's commands topic is not published, retained or not:
// only the hub publishes commands, so a device subscribed to its commands
// gets nothing from it, and no retained message waits there for the next
// subscriber. The drop is counted.
func TestBrokerWillOnCommandsTopicDropped(t *testing.T) {
	b := startMQTTBroker(t, func(c *BrokerConfig) { c.Commands = &recordingCommander{} })
	addr := b.Addr().String()
	watcher := dialHand(t, addr, 4)
	watcher.write(append(handConnect(4, "watcher", true, 60), handSubscribe(4, 1, "devices/#")...))
	watcher.expect(packets.Connack)
	watcher.expect(packets.Suback)

	for _, retain := range []bool{false, true} {
		before := b.dropped()
		c := dialHand(t, addr, 5)
		c.write(handConnectWillFlags(fmt.Sprintf("willing-%v", retain), true, retain, 0, 0, "devices/d1/commands", "not a command"))
		c.expect(packets.Connack)
		_ = c.conn.Close() // no DISCONNECT: the will is due
		waitFor(t, "the will to be dropped", func() bool { return b.dropped() == before+1 })
	}
	if msgs := b.server.Topics.Messages("devices/d1/commands"); len(msgs) != 0 {
		t.Fatalf("%d retained messages on the commands topic", len(msgs))
	}
	// The wills are refused like publishes: their error answers come on
	// devices/d1/errors, ahead of the PINGRESP.
	watcher.write(handPingreq)
	for pk := watcher.next(); pk.FixedHeader.Type != packets.Pingresp; pk = watcher.next() {
		if pk.TopicName != "devices/d1/errors" {
			t.Fatalf("watcher got %s on %q: %q", packets.PacketNames[pk.FixedHeader.Type], pk.TopicName, pk.Payload)
		}
	}
}
