package devices

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/telehub/telehub/bridge"
)

// The helpers of mqtt_command_routes_test.go: a Commander that records
// what it is told, raw clients that subscribe, unsubscribe and
// acknowledge, and what the broker holds of a client's routes and
// subscriptions.

// commandsOfD1 is the commands filter of device d1, the tests' device.
const commandsOfD1 = "devices/d1/commands"

// routeConnect is the CONNECT of client id: a session that
// ends with the connection (clean), or one that outlives it (an MQTT 5
// session expiry of a minute).
func routeConnect(version byte, id string, clean bool) rawConnect {
	c := rawConnect{version: version, id: id, clean: clean, keepalive: 60}
	if version == 5 && !clean {
		c.props = packets.Properties{SessionExpiryInterval: 60, SessionExpiryIntervalFlag: true}
	}
	return c
}

// routed connects client id and subscribes it to d1's commands with a
// SUBSCRIBE that takes a route.
func routed(t *testing.T, b *mqttTestBroker, version byte, id string, clean bool) *rawMQTT {
	t.Helper()
	d, ack := dialRaw(t, b.Addr().String(), routeConnect(version, id, clean))
	if ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %#x", ack.ReasonCode)
	}
	d.wantSuback([]byte{1}, 1, commandsOfD1)
	return d
}

// onceDelivered sends command id to d1 and checks that d, d1's client,
// gets it once.
func onceDelivered(t *testing.T, b *mqttTestBroker, d *rawMQTT, cmd *routeCommander, id string) {
	t.Helper()
	b.command(t, "d1", id)
	pk := d.commandPublish("d1")
	if got := commandID(t, pk); got != id {
		t.Fatalf("got command %q, want %s", got, id)
	}
	if n := b.queued(t, "d1"); n != 1 { // until its PUBACK
		t.Fatalf("session holds %d publishes of the command, want 1", n)
	}
	d.puback(pk.PacketID)
	cmd.confirmed(t, id)
	d.ping() // no second publish first
}

// routeCommander is a Commander that records the devices said connected
// and the confirmations it is given.
type routeCommander struct {
	mu        sync.Mutex
	connected []string
	answers   chan bridge.CommandAnswer
}

func newRouteCommander() *routeCommander {
	return &routeCommander{answers: make(chan bridge.CommandAnswer, 64)}
}

func (c *routeCommander) Connected(device string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.connected = append(c.connected, device)
}

func (c *routeCommander) Answer(_ string, a bridge.CommandAnswer) error {
	c.answers <- a
	return nil
}

// connects returns how often device was said connected.
func (c *routeCommander) connects(device string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, d := range c.connected {
		if d == device {
			n++
		}
	}
	return n
}

// confirmed waits for the confirmations of ids, in any order.
func (c *routeCommander) confirmed(t *testing.T, ids ...string) {
	t.Helper()
	want := slices.Clone(ids)
	for len(want) > 0 {
		select {
		case a := <-c.answers:
			i := slices.Index(want, a.ID)
			if i < 0 || a.IsResult {
				t.Fatalf("confirmation %+v, want one of %v", a, want)
			}
			want = slices.Delete(want, i, i+1)
		case <-time.After(waitGuard):
			t.Fatalf("commands %v not confirmed", want)
		}
	}
}

// noConfirmation checks that nothing was confirmed so far.
func (c *routeCommander) noConfirmation(t *testing.T) {
	t.Helper()
	select {
	case a := <-c.answers:
		t.Fatalf("unexpected confirmation %+v", a)
	default:
	}
}

// startRouteBroker starts a broker with commands on; edit adjusts its
// config further.
func startRouteBroker(t *testing.T, edit func(*BrokerConfig)) (*mqttTestBroker, *routeCommander) {
	t.Helper()
	cmd := newRouteCommander()
	b := startMQTTBroker(t, func(c *BrokerConfig) {
		c.Commands = cmd
		if edit != nil {
			edit(c)
		}
	})
	return b, cmd
}

// command sends command id to device and checks that the broker took it.
func (b *mqttTestBroker) command(t *testing.T, device, id string) {
	t.Helper()
	if !b.SendCommand(device, &bridge.Command{ID: id, Device: device, Name: "ping", Expires: time.Unix(1, 0)}) {
		t.Fatalf("command %s to %s not published", id, device)
	}
}

// commandID returns the id of a command publish.
func commandID(t *testing.T, pk packets.Packet) string {
	t.Helper()
	s := string(pk.Payload)
	_, rest, ok := strings.Cut(s, `"id":"`)
	id, _, ok2 := strings.Cut(rest, `"`)
	if !ok || !ok2 {
		t.Fatalf("publish %q carries no command id", s)
	}
	return id
}

// subscribeAt sends a SUBSCRIBE of filters at qos.
func (m *rawMQTT) subscribeAt(id uint16, qos byte, props packets.Properties, filters ...string) {
	m.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: id, Properties: props}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: qos})
	}
	m.send(pk)
}

// suback subscribes to filters at QoS 1 and returns the SUBACK's codes,
// failing unless it carries packet id id.
func (m *rawMQTT) suback(id uint16, filters ...string) []byte {
	m.t.Helper()
	m.subscribe(id, filters...)
	ack := m.expect(packets.Suback)
	if ack.PacketID != id {
		m.t.Fatalf("SUBACK packet id %d, want %d", ack.PacketID, id)
	}
	return ack.ReasonCodes
}

// wantSuback subscribes to filters at QoS 1 and checks the SUBACK's
// codes.
func (m *rawMQTT) wantSuback(want []byte, id uint16, filters ...string) {
	m.t.Helper()
	if codes := m.suback(id, filters...); !bytes.Equal(codes, want) {
		m.t.Fatalf("SUBACK of %v: codes %v, want %v", filters, codes, want)
	}
}

// unsuback unsubscribes from filters and returns the UNSUBACK, failing
// unless it carries packet id id.
func (m *rawMQTT) unsuback(id uint16, filters ...string) packets.Packet {
	m.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe}, PacketID: id}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f})
	}
	m.send(pk)
	ack := m.expect(packets.Unsuback)
	if ack.PacketID != id {
		m.t.Fatalf("UNSUBACK packet id %d, want %d", ack.PacketID, id)
	}
	return ack
}

// puback acknowledges the publish of packet id id.
func (m *rawMQTT) puback(id uint16) {
	m.t.Helper()
	m.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id})
}

// commandPublish reads the next packet, which must be a QoS 1 command
// publish to device, and returns it.
func (m *rawMQTT) commandPublish(device string) packets.Packet {
	m.t.Helper()
	pk := m.expect(packets.Publish)
	if pk.TopicName != commandsTopic(device) || pk.FixedHeader.Qos != 1 || pk.PacketID == 0 {
		m.t.Fatalf("publish on %q QoS %d id %d, want a QoS 1 publish on %s",
			pk.TopicName, pk.FixedHeader.Qos, pk.PacketID, commandsTopic(device))
	}
	return pk
}

// ping sends a PINGREQ and checks that the broker's next packet is the
// PINGRESP: the broker handled what the client sent before, and wrote
// nothing else meanwhile.
func (m *rawMQTT) ping() {
	m.t.Helper()
	m.write(handPingreq)
	m.expect(packets.Pingresp)
}

// disconnect sends a DISCONNECT and waits for the broker to close.
func (m *rawMQTT) disconnect() {
	m.t.Helper()
	m.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	m.closed()
}

// routeState is what the broker holds of one client's subscription to a
// device's commands, and of the broker's subscriptions.
type routeState struct {
	routes      int   // the client's routes
	held        bool  // the commands filter among the client's mochi subscriptions
	subscribers int   // clients in mochi's topic tree for the commands topic
	writing     bool  // mochi's writer runs for the client
	total       int64 // the broker's count of subscriptions (Info.Subscriptions)
}

func (s routeState) String() string {
	return fmt.Sprintf("routes %d, held %v, subscribers %d, writing %v, subscriptions %d",
		s.routes, s.held, s.subscribers, s.writing, s.total)
}

// routeState returns what the broker holds for client id and device.
func (b *mqttTestBroker) routeState(t *testing.T, id, device string) routeState {
	t.Helper()
	cl := b.client(t, id)
	_, held := cl.State.Subscriptions.Get(commandsTopic(device))
	s := routeState{
		routes:      b.hook.routes.count(cl),
		held:        held,
		subscribers: len(b.server.Topics.Subscribers(commandsTopic(device)).Subscriptions),
		total:       atomic.LoadInt64(&b.server.Info.Subscriptions),
	}
	if v, ok := b.sessions.live.Load(cl); ok {
		s.writing = v.(*mqttSession).writing.Load()
	}
	return s
}

// wantRoute checks what the broker holds for client id and device.
func (b *mqttTestBroker) wantRoute(t *testing.T, id, device string, want routeState) {
	t.Helper()
	if got := b.routeState(t, id, device); got != want {
		t.Fatalf("%s: %v; want %v", id, got, want)
	}
}

// subscriptions returns the broker's count of subscriptions.
func (b *mqttTestBroker) subscriptions() int64 { return atomic.LoadInt64(&b.server.Info.Subscriptions) }

// routeWriters counts the goroutines that write commands to routes, and
// among them those blocked in a write to a connection that does not read.
func routeWriters() (running, blocked int) {
	for _, g := range goroutineStacks() {
		if !strings.Contains(g, "devices.(*commandRoutes).drain(") {
			continue
		}
		running++
		if strings.Contains(g, "waitWrite") {
			blocked++
		}
	}
	return running, blocked
}

// routedReceiveMaximum1 connects d1's MQTT 5 client with Receive Maximum
// 1 and subscribes it to its commands with a route.
func routedReceiveMaximum1(t *testing.T, b *mqttTestBroker) *rawMQTT {
	t.Helper()
	c := routeConnect(5, "d1", true)
	c.props = packets.Properties{ReceiveMaximum: 1}
	d, _ := dialRaw(t, b.Addr().String(), c)
	d.wantSuback([]byte{1}, 1, commandsOfD1)
	return d
}

// blockRouteWriter has d, d1's routed client, read no more, and sends d1
// commands until the route's writer is blocked in a write to d. The
// commands go from a goroutine, which ends after the next SendCommand
// returns and sends how many it sent.
func (b *mqttTestBroker) blockRouteWriter(t *testing.T, d *rawMQTT) <-chan int {
	t.Helper()
	if tcp, ok := d.conn.(*net.TCPConn); ok {
		_ = tcp.SetReadBuffer(4 << 10)
	}
	stop := make(chan struct{})
	defer close(stop)
	sent := b.bigCommands(stop)
	waitFor(t, "the route's writer to block", func() bool { _, blocked := routeWriters(); return blocked > 0 })
	return sent
}

// bigCommands sends commands of 60 KiB to d1 from a goroutine until stop
// is closed, or MaxQueued were sent; it sends how many on the channel it
// returns as it ends.
func (b *mqttTestBroker) bigCommands(stop <-chan struct{}) <-chan int {
	sent := make(chan int, 1)
	go func() {
		params := json.RawMessage(`{"blob":"` + strings.Repeat("x", 60<<10) + `"}`)
		i := 0
		defer func() { sent <- i }()
		for ; i < DefaultMQTTMaxQueued; i++ {
			select {
			case <-stop:
				return
			default:
			}
			b.SendCommand("d1", &bridge.Command{ID: fmt.Sprintf("c%d", i), Device: "d1", Name: "big", Params: params})
		}
	}()
	return sent
}
