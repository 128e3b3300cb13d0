package devices

import (
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// commandRoutes holds the subscriptions by which MQTT clients take a
// device's commands, when a client subscribes with a SUBSCRIBE of exactly
// devices/{id}/commands (a route). The hub publishes commands on that
// topic and devices may not, so such a subscription needs neither mochi's
// topic tree (about 1.8 KB a filter) and per-client subscription map
// (0.7 KB) nor mochi's writer goroutine, which takes 4 to 8 KiB of stack
// for as long as the client is connected. A route's commands are written
// by a goroutine that runs only while publishes wait for the connection.
//
// A route is a session's subscription like any: it moves with a session
// taken over, ends with a session that ends, and, while its session waits
// for its client, the commands sent to it wait in the session (mochi's
// in-flight messages, sent again when the client is back). Any other
// SUBSCRIBE or UNSUBSCRIBE that names a routed filter first turns the
// route into a mochi subscription (demote), which mochi then handles as
// it handles its own.
type commandRoutes struct {
	log *slog.Logger

	mu       sync.Mutex
	byDevice map[string][]*routedClient
	byClient map[*mqtt.Client]*routedClient
	closed   bool
	writers  sync.WaitGroup
}

// routedClient is a client with routes, and its publishes waiting to be
// written.
type routedClient struct {
	cl     *mqtt.Client
	routes []commandRoute // under commandRoutes.mu

	mu      sync.Mutex
	out     []packets.Packet
	writing bool
}

// commandRoute is a device whose commands a client takes, at qos (the
// QoS granted).
type commandRoute struct {
	device string
	qos    byte
}

func newCommandRoutes(log *slog.Logger) *commandRoutes {
	return &commandRoutes{
		log:      log,
		byDevice: make(map[string][]*routedClient),
		byClient: make(map[*mqtt.Client]*routedClient),
	}
}

// add routes device's commands to cl at qos and reports whether the
// route is new (not one whose QoS changed).
func (r *commandRoutes) add(cl *mqtt.Client, device string, qos byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	rc := r.byClient[cl]
	if rc == nil {
		rc = &routedClient{cl: cl}
		r.byClient[cl] = rc
	}
	for i := range rc.routes {
		if rc.routes[i].device == device {
			rc.routes[i].qos = qos
			return false
		}
	}
	rc.routes = append(rc.routes, commandRoute{device: device, qos: qos})
	r.byDevice[device] = append(r.byDevice[device], rc)
	return true
}

// remove ends cl's route of device and returns it; false when cl has
// none.
func (r *commandRoutes) remove(cl *mqtt.Client, device string) (commandRoute, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rc := r.byClient[cl]
	if rc == nil {
		return commandRoute{}, false
	}
	i := slices.IndexFunc(rc.routes, func(rt commandRoute) bool { return rt.device == device })
	if i < 0 {
		return commandRoute{}, false
	}
	rt := rc.routes[i]
	rc.routes = slices.Delete(rc.routes, i, i+1)
	if len(rc.routes) == 0 {
		delete(r.byClient, cl)
	}
	r.unlink(device, rc)
	return rt, true
}

// unlink takes rc off device's clients. r.mu is held.
func (r *commandRoutes) unlink(device string, rc *routedClient) {
	clients := slices.DeleteFunc(r.byDevice[device], func(c *routedClient) bool { return c == rc })
	if len(clients) == 0 {
		delete(r.byDevice, device)
		return
	}
	r.byDevice[device] = clients
}

// drop ends every route of cl and returns how many there were.
func (r *commandRoutes) drop(cl *mqtt.Client) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	rc := r.byClient[cl]
	if rc == nil {
		return 0
	}
	delete(r.byClient, cl)
	for _, rt := range rc.routes {
		r.unlink(rt.device, rc)
	}
	return len(rc.routes)
}

// move gives the routes of old, whose session cl took over, to cl.
// Publishes waiting for old's connection stay with it: they are in the
// session's in-flight messages, which cl sends again.
func (r *commandRoutes) move(old, cl *mqtt.Client) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := r.byClient[old]
	if prev == nil {
		return
	}
	delete(r.byClient, old)
	rc := &routedClient{cl: cl, routes: prev.routes}
	r.byClient[cl] = rc
	for _, rt := range rc.routes {
		clients := r.byDevice[rt.device]
		if i := slices.Index(clients, prev); i >= 0 {
			clients[i] = rc
		}
	}
}

// holds reports whether cl has a route for filter.
func (r *commandRoutes) holds(cl *mqtt.Client, filter string) bool {
	device, ok := commandsFilterDevice(filter)
	if !ok {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rc := r.byClient[cl]
	return rc != nil && slices.ContainsFunc(rc.routes, func(rt commandRoute) bool { return rt.device == device })
}

// count returns how many routes cl has.
func (r *commandRoutes) count(cl *mqtt.Client) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rc := r.byClient[cl]; rc != nil {
		return len(rc.routes)
	}
	return 0
}

// of returns the clients with a route of device.
func (r *commandRoutes) of(device string) []*routedClient {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.byDevice[device])
}

// reaches reports whether a client has a route of device.
func (r *commandRoutes) reaches(device string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byDevice[device]) > 0
}

// write queues pk for rc's connection, and starts its writer unless it
// runs. After close nothing more is written: pk stays in the session.
func (r *commandRoutes) write(rc *routedClient, pk packets.Packet) {
	rc.mu.Lock()
	rc.out = append(rc.out, pk)
	start := !rc.writing
	rc.writing = true
	rc.mu.Unlock()
	if !start {
		return
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.writers.Add(1)
	r.mu.Unlock()
	go r.drain(rc)
}

// drain writes rc's queued publishes in order until none is left. A
// write that fails leaves its publish in the session.
func (r *commandRoutes) drain(rc *routedClient) {
	defer r.writers.Done()
	for {
		rc.mu.Lock()
		if len(rc.out) == 0 {
			rc.out, rc.writing = nil, false
			rc.mu.Unlock()
			return
		}
		pk := rc.out[0]
		rc.out[0] = packets.Packet{}
		rc.out = rc.out[1:]
		rc.mu.Unlock()
		if err := rc.cl.WritePacket(pk); err != nil {
			r.log.Debug("mqtt command publish not written", "client", rc.cl.ID, "error", err)
		}
	}
}

// close stops starting writers and waits for those that run; the broker
// closed every connection first, so their writes end.
func (r *commandRoutes) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.writers.Wait()
}

// routeCommands handles a SUBSCRIBE or UNSUBSCRIBE cl sent as far as
// routes go: it takes a SUBSCRIBE that a route can serve and answers it
// (handled), and otherwise turns the routes the packet names into mochi
// subscriptions before mochi sees it.
func (h *brokerHook) routeCommands(cl *mqtt.Client, pk packets.Packet) (handled bool, err error) {
	t := pk.FixedHeader.Type
	if t != packets.Subscribe && t != packets.Unsubscribe {
		return false, nil
	}
	if t == packets.Subscribe {
		if rt, ok := h.routable(cl, pk); ok {
			return true, h.subscribeRoute(cl, pk, rt)
		}
	}
	for _, f := range pk.Filters {
		if device, ok := commandsFilterDevice(f.Filter); ok {
			h.demote(cl, device)
		}
	}
	return false, nil
}

// routable reports whether a route serves pk, a SUBSCRIBE of cl already
// through compatRead, and which: one filter, devices/{id}/commands of a
// device cl may subscribe to, at QoS 1 or more, without a subscription
// identifier, within the subscription limit, not held as a mochi
// subscription, and with no retained message on the topic (mochi sends
// retained messages on subscribing).
func (h *brokerHook) routable(cl *mqtt.Client, pk packets.Packet) (commandRoute, bool) {
	caps := h.server.Options.Capabilities
	if h.commands == nil || len(pk.Filters) != 1 || caps.MaximumQos == 0 ||
		pk.SubscribeValidate() != packets.CodeSuccess {
		return commandRoute{}, false
	}
	f := pk.Filters[0]
	device, ok := commandsFilterDevice(f.Filter)
	if !ok || f.Qos == 0 || f.Identifier != 0 || h.auth != nil && device != string(cl.Properties.Username) {
		return commandRoute{}, false
	}
	v, ok := h.conns.Load(cl)
	if !ok || v.(*mqttConn).ack.overLimit != nil || v.(*mqttConn).ack.id == 0 {
		return commandRoute{}, false
	}
	if _, held := cl.State.Subscriptions.Get(f.Filter); held || len(h.server.Topics.Messages(f.Filter)) > 0 {
		return commandRoute{}, false
	}
	return commandRoute{device: device, qos: min(f.Qos, caps.MaximumQos)}, true
}

// subscribeRoute routes rt's commands to cl, answers pk, the SUBSCRIBE,
// and has the device's unconfirmed commands sent.
func (h *brokerHook) subscribeRoute(cl *mqtt.Client, pk packets.Packet, rt commandRoute) error {
	if h.routes.add(cl, rt.device, rt.qos) {
		atomic.AddInt64(&h.server.Info.Subscriptions, 1)
	}
	ack := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Suback},
		PacketID:    pk.PacketID, // compatEncode puts the client's id back
		ReasonCodes: []byte{rt.qos},
		Properties:  packets.Properties{User: pk.Properties.User},
	}
	if err := cl.WritePacket(ack); err != nil {
		return err
	}
	h.commands.Connected(rt.device)
	return nil
}

// demote turns cl's route of device, if any, into a mochi subscription.
func (h *brokerHook) demote(cl *mqtt.Client, device string) {
	rt, ok := h.routes.remove(cl, device)
	if !ok {
		return
	}
	sub := packets.Subscription{Filter: commandsTopic(device), Qos: rt.qos}
	h.server.Topics.Subscribe(cl.ID, sub) // counted already, as the route
	cl.State.Subscriptions.Add(sub.Filter, sub)
}

// unsubscribeClient drops every subscription of cl's session: mochi's and
// its routes.
func (h *brokerHook) unsubscribeClient(cl *mqtt.Client) {
	h.server.UnsubscribeClient(cl)
	if n := h.routes.drop(cl); n > 0 {
		atomic.AddInt64(&h.server.Info.Subscriptions, -int64(n))
	}
}

// publishCommand hands a command publish on topic to a client with a
// route, as mochi hands a publish to a subscriber: within the session's
// limits, with a packet id of the session's, kept in its in-flight
// messages until the PUBACK and written now, or held while the client's
// receive maximum is reached (mochi sends it on then), or left in the
// session while its client is away.
func (h *brokerHook) publishCommand(rc *routedClient, topic string, payload []byte) {
	cl, srv := rc.cl, h.server
	if !h.deliver(cl) {
		return
	}
	caps := srv.Options.Capabilities
	out := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, // routes are QoS 1 or 2
		TopicName:   topic,
		Payload:     payload,
		Origin:      mqtt.InlineClientId,
		Created:     time.Now().Unix(),
	}
	if caps.MaximumMessageExpiryInterval > 0 {
		out.Expiry = out.Created + caps.MaximumMessageExpiryInterval
	}
	if cl.Properties.Props.TopicAliasMaximum > 0 {
		alias, exists := cl.State.TopicAliases.Outbound.Set(topic)
		if out.Properties.TopicAlias = alias; alias > 0 {
			out.Properties.TopicAliasFlag = true
			if exists {
				out.TopicName = ""
			}
		}
	}
	if cl.State.Inflight.Len() >= int(caps.MaximumInflight) {
		atomic.AddInt64(&srv.Info.InflightDropped, 1)
		srv.Log.Warn("client store quota reached", "client", cl.ID, "listener", cl.Net.Listener)
		return
	}
	id, err := cl.NextPacketID()
	if err != nil {
		atomic.AddInt64(&srv.Info.InflightDropped, 1)
		srv.Log.Warn("packet ids exhausted", "error", err, "client", cl.ID, "listener", cl.Net.Listener)
		return
	}
	out.PacketID = uint16(id)
	held := receiveMaximumReached(cl)
	if cl.State.Inflight.Set(out) {
		atomic.AddInt64(&srv.Info.Inflight, 1)
		h.OnQosPublish(cl, out, out.Created, 0)
		cl.State.Inflight.DecreaseSendQuota()
	}
	if held {
		out.Expiry = -1 // mochi's mark for a publish to send once the quota allows
		cl.State.Inflight.Set(out)
		return
	}
	if cl.Net.Conn == nil || cl.Closed() {
		return
	}
	h.routes.write(rc, out)
}

// receiveMaximumReached reports whether an MQTT 5 client has as many QoS
// 1 and 2 publishes unacknowledged as its Receive Maximum allows.
func receiveMaximumReached(cl *mqtt.Client) bool {
	limit := int(cl.Properties.Props.ReceiveMaximum)
	if cl.Properties.ProtocolVersion < 5 || limit == 0 {
		return false
	}
	n := 0
	for _, pk := range cl.State.Inflight.GetAll(false) {
		if pk.FixedHeader.Type == packets.Publish {
			n++
		}
	}
	return n >= limit
}
