package devices

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/telehub/telehub/bridge"
)

// quietWait is how long a test listens for an answer that must not come.
// An answer within it is a failure however loaded the machine; its
// absence proves only that the broker did not answer early.
const quietWait = 200 * time.Millisecond

// releaseAtWith calls the done callback of the i-th held submission with
// result r.
func (f *fakeBridge) releaseAtWith(i int, r bridge.Result) {
	f.mu.Lock()
	done := f.held[i]
	f.held[i] = nil
	f.mu.Unlock()
	done(r)
}

// quiet fails the test when the broker sends anything within quietWait.
func (m *rawMQTT) quiet() {
	m.t.Helper()
	_ = m.conn.SetReadDeadline(time.Now().Add(quietWait))
	_, err := m.r.Peek(1)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		pk, _ := m.read()
		m.t.Fatalf("got %s %d (err %v), want nothing yet", packets.PacketNames[pk.FixedHeader.Type], pk.PacketID, err)
	}
}

// pubacks reads the next n packets and returns their PUBACK ids.
func (m *rawMQTT) pubacks(n int) []uint16 {
	m.t.Helper()
	ids := make([]uint16, 0, n)
	for range n {
		pk := m.next()
		if pk.FixedHeader.Type != packets.Puback {
			m.t.Fatalf("got %s, want PUBACK", packets.PacketNames[pk.FixedHeader.Type])
		}
		ids = append(ids, pk.PacketID)
	}
	return ids
}

// A client's QoS 1 publishes all reach the store before the first one is
// committed, and their PUBACKs come in the order they were sent, each
// after its own commit, whatever order the commits report in.
func TestBrokerQoS1PublishesInFlightTogether(t *testing.T) {
	for _, version := range []byte{4, 5} {
		t.Run(fmt.Sprint("mqtt ", version), func(t *testing.T) {
			b := startMQTTBroker(t, nil)
			b.bridge.setHold()
			c, _ := dialRaw(t, b.Addr().String(), rawConnect{version: version, id: "pipe", clean: true})
			for id := range uint16(4) {
				c.publish("devices/d1/telemetry", 1, id+1, fmt.Appendf(nil, `{"seq":%d,"temp":1}`, id+1), packets.Properties{})
			}
			for range 4 {
				b.bridge.nextWrite(t)
			}
			c.quiet()
			b.bridge.releaseAt(1) // the second commit first: its PUBACK waits for the first
			c.quiet()
			b.bridge.releaseAt(0)
			if got := c.pubacks(2); got[0] != 1 || got[1] != 2 {
				t.Fatalf("PUBACKs %v, want [1 2]", got)
			}
			b.bridge.releaseAt(3)
			c.quiet()
			b.bridge.releaseAt(2)
			if got := c.pubacks(2); got[0] != 3 || got[1] != 4 {
				t.Fatalf("PUBACKs %v, want [3 4]", got)
			}
		})
	}
}

// A publish whose commit failed is left unacknowledged and recorded; the
// publishes around it are acknowledged.
func TestBrokerQoS1FailedCommitAmongOthers(t *testing.T) {
	b := startMQTTBroker(t, nil)
	b.bridge.setHold()
	c, _ := dialRaw(t, b.Addr().String(), rawConnect{version: 4, id: "fail", clean: true})
	for id := range uint16(3) {
		c.publish("devices/d1/telemetry", 1, id+1, []byte(`{"temp":1}`), packets.Properties{})
		b.bridge.nextWrite(t)
	}
	b.bridge.releaseAtWith(1, bridge.Result{Err: errors.New("fsync failed")})
	b.bridge.releaseAt(2)
	c.quiet()
	b.bridge.releaseAt(0)
	if got := c.pubacks(2); got[0] != 1 || got[1] != 3 {
		t.Fatalf("PUBACKs %v, want [1 3]", got)
	}
	if rej := b.bridge.nextReject(t); rej.code != bridge.CodeInternal || rej.in.Device != "d1" {
		t.Fatalf("rejection %+v", rej)
	}
}

// A client at the receive maximum is not read from until its oldest
// publish is acknowledged; an MQTT 5 client is told the bound.
func TestBrokerQoS1ReceiveMaximum(t *testing.T) {
	b := startMQTTBroker(t, func(c *BrokerConfig) { c.Limits.ReceiveMaximum = 2 })
	b.bridge.setHold()
	c, connack := dialRaw(t, b.Addr().String(), rawConnect{version: 5, id: "max", clean: true})
	if connack.Properties.ReceiveMaximum != 2 {
		t.Fatalf("CONNACK receive maximum %d, want 2", connack.Properties.ReceiveMaximum)
	}
	for id := range uint16(3) {
		c.publish("devices/d1/telemetry", 1, id+1, []byte(`{"temp":1}`), packets.Properties{})
	}
	b.bridge.nextWrite(t)
	b.bridge.nextWrite(t)
	c.quiet() // the time a wrong broker would take to read the third
	b.bridge.noWrite(t)
	b.bridge.releaseAt(0)
	if got := c.pubacks(1); got[0] != 1 {
		t.Fatalf("PUBACK %v, want [1]", got)
	}
	b.bridge.nextWrite(t) // the third is read now
	b.bridge.release()
	if got := c.pubacks(2); got[0] != 2 || got[1] != 3 {
		t.Fatalf("PUBACKs %v, want [2 3]", got)
	}
}

// An answer mochi writes itself (here the PUBACK of a publish to a foreign
// topic) comes after the PUBACKs of the client's earlier publishes.
func TestBrokerQoS1OtherAnswersKeepOrder(t *testing.T) {
	b := startMQTTBroker(t, nil)
	b.bridge.setHold()
	c, _ := dialRaw(t, b.Addr().String(), rawConnect{version: 4, id: "order", clean: true})
	c.publish("devices/d1/telemetry", 1, 1, []byte(`{"temp":1}`), packets.Properties{})
	b.bridge.nextWrite(t)
	c.publish("plant/line-1", 1, 2, []byte(`x`), packets.Properties{})
	c.quiet()
	b.bridge.releaseAt(0)
	if got := c.pubacks(2); got[0] != 1 || got[1] != 2 {
		t.Fatalf("PUBACKs %v, want [1 2]", got)
	}
}

// A publish that another client subscribes to is forwarded after its
// commit and acknowledged by mochi, in order with the deferred ones.
func TestBrokerQoS1ForwardedPublish(t *testing.T) {
	b := startMQTTBroker(t, nil)
	sub, _ := dialRaw(t, b.Addr().String(), rawConnect{version: 4, id: "sub", clean: true})
	sub.subscribe(1, "devices/d1/telemetry/temp")
	sub.nextOf(packets.Suback)
	b.bridge.setHold()
	c, _ := dialRaw(t, b.Addr().String(), rawConnect{version: 4, id: "pub", clean: true})
	c.publish("devices/d1/telemetry", 1, 1, []byte(`{"temp":1}`), packets.Properties{})
	b.bridge.nextWrite(t)
	c.publish("devices/d1/telemetry/temp", 1, 2, []byte(`2`), packets.Properties{})
	b.bridge.nextWrite(t)
	c.quiet()
	b.bridge.release()
	if got := c.pubacks(2); got[0] != 1 || got[1] != 2 {
		t.Fatalf("PUBACKs %v, want [1 2]", got)
	}
	if pk := sub.nextOf(packets.Publish); string(pk.Payload) != "2" {
		t.Fatalf("forwarded %q", pk.Payload)
	}
}

// A client that disconnects cleanly gets the PUBACKs of its committed
// publishes before the broker closes the connection.
func TestBrokerQoS1DisconnectWaitsForAcks(t *testing.T) {
	b := startMQTTBroker(t, nil)
	b.bridge.setHold()
	c, _ := dialRaw(t, b.Addr().String(), rawConnect{version: 4, id: "bye", clean: true})
	c.publish("devices/d1/telemetry", 1, 9, []byte(`{"temp":1}`), packets.Properties{})
	b.bridge.nextWrite(t)
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	c.quiet()
	b.bridge.release()
	if got := c.pubacks(1); got[0] != 9 {
		t.Fatalf("PUBACK %v, want [9]", got)
	}
	if _, err := c.read(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the PUBACK: %v, want the connection closed", err)
	}
	waitFor(t, "the connection to be forgotten", func() bool { return b.conns() == 0 })
}

// A refused submission (a full store) leaves its publish unacknowledged
// without holding up the PUBACKs of the others.
func TestBrokerQoS1RefusedSubmissionAmongOthers(t *testing.T) {
	b := startMQTTBroker(t, nil)
	b.bridge.setHold()
	c, _ := dialRaw(t, b.Addr().String(), rawConnect{version: 4, id: "full", clean: true})
	c.publish("devices/d1/telemetry", 1, 1, []byte(`{"temp":1}`), packets.Properties{})
	b.bridge.nextWrite(t)
	b.bridge.setErrors(errors.New("queue closed"), nil)
	c.publish("devices/d1/telemetry", 1, 2, []byte(`{"temp":2}`), packets.Properties{})
	if rej := b.bridge.nextReject(t); rej.code != bridge.CodeInternal {
		t.Fatalf("rejection %+v", rej)
	}
	b.bridge.setErrors(nil, nil)
	c.publish("devices/d1/telemetry", 1, 3, []byte(`{"temp":3}`), packets.Properties{})
	b.bridge.nextWrite(t)
	b.bridge.release()
	if got := c.pubacks(2); got[0] != 1 || got[1] != 3 {
		t.Fatalf("PUBACKs %v, want [1 3]", got)
	}
}

// After a burst, a connection's queue of publishes waiting for their
// commits gives its memory back.
func TestMQTTAcksShrinkAfterBurst(t *testing.T) {
	_, server, _, _ := newMQTTHookHarness(t, nil)
	var packets, bytes int64
	a := newMQTTAcks(mqttHookClient(server, "c1", ""), 1024, &mqttWriteCounts{packets: &packets, bytes: &bytes},
		func(bridge.Input, error) {})
	var done []func(bridge.Result)
	for id := range uint16(100) {
		done = append(done, a.add(id+1, bridge.Input{Device: "d1"}))
	}
	for _, d := range done {
		d(bridge.Result{})
	}
	if !a.drain(nil) {
		t.Fatal("drain failed")
	}
	a.mu.Lock()
	queue, buf := cap(a.queue), cap(a.buf)
	a.mu.Unlock()
	if queue > mqttAcksKept || buf > 4*mqttAcksKept {
		t.Fatalf("after the burst: queue capacity %d, batch capacity %d", queue, buf)
	}
	a.close()
}
