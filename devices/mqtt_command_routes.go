package devices

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// commandRoutes holds the subscriptions by which MQTT clients take a
// device's commands, when a client subscribes with a SUBSCRIBE of exactly
// devices/{id}/commands (a route; one per client). The hub publishes
// commands on that topic and devices may not, so such a subscription
// needs neither mochi's topic tree (about 1.8 KB a filter) and
// per-client subscription map (0.7 KB) nor mochi's writer goroutine,
// which takes 4 to 8 KiB of stack for as long as the client is
// connected. A route costs about 140 bytes; its commands are written by
// a goroutine that runs only while publishes wait for the connection.
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
	// prepare makes a command publish queued for a route ready to write
	// and reports whether it is to be written now (publishCommand).
	prepare func(*commandRoute, *packets.Packet) bool
	// maxPending bounds the publishes queued for one route.
	maxPending int

	mu       sync.Mutex
	byClient map[*mqtt.Client]*commandRoute
	byDevice map[string]*commandRoute // chained by next
	// pending holds the publishes of the routes being written, in order;
	// a route is in it while its writer runs.
	pending map[*commandRoute][]packets.Packet
	// held holds, in order, the packet ids of publishes kept in a route's
	// session unwritten while its client's Receive Maximum is reached.
	held    map[*commandRoute][]uint16
	closed  bool
	writers sync.WaitGroup
}

// commandRoute is a client that takes device's commands, at qos (the QoS
// granted).
type commandRoute struct {
	cl     *mqtt.Client
	device string
	qos    byte
	// next is another client's route of the same device.
	next *commandRoute
	// ended says how the route ended, under commandRoutes.mu: a writer
	// that was readying one of its publishes then acts on it
	// (prepareCommand). movedTo is the route of the client that took the
	// session over.
	ended   routeEnd
	movedTo *commandRoute
}

// routeEnd is how a route ended.
type routeEnd uint8

const (
	routeLive    routeEnd = iota
	routeMoved            // its session taken over: movedTo
	routeDemoted          // a mochi subscription of the same client now
	routeDropped          // its session or subscription ended
)

func newCommandRoutes(log *slog.Logger, maxPending int) *commandRoutes {
	return &commandRoutes{
		log:        log,
		maxPending: maxPending,
		byClient:   make(map[*mqtt.Client]*commandRoute),
		byDevice:   make(map[string]*commandRoute),
		pending:    make(map[*commandRoute][]packets.Packet),
		held:       make(map[*commandRoute][]uint16),
	}
}

// add routes device's commands to cl at qos and reports whether the
// route is new (not one whose QoS changed). cl has no route of another
// device (routable).
func (r *commandRoutes) add(cl *mqtt.Client, device string, qos byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rt := r.byClient[cl]; rt != nil {
		rt.qos = qos
		return false
	}
	rt := &commandRoute{cl: cl, device: device, qos: qos, next: r.byDevice[device]}
	r.byClient[cl] = rt
	r.byDevice[device] = rt
	return true
}

// remove ends cl's route of device and returns it with the packet ids of
// its held publishes; nil when cl has none.
func (r *commandRoutes) remove(cl *mqtt.Client, device string) (*commandRoute, []uint16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt := r.byClient[cl]
	if rt == nil || rt.device != device {
		return nil, nil
	}
	held := r.held[rt]
	delete(r.byClient, cl)
	delete(r.held, rt)
	r.replace(rt, rt.next)
	rt.ended = routeDemoted
	return rt, held
}

// replace puts with in old's place in its device's chain; with nil takes
// old off it. r.mu is held.
func (r *commandRoutes) replace(old, with *commandRoute) {
	if r.byDevice[old.device] == old {
		if with == nil {
			delete(r.byDevice, old.device)
		} else {
			r.byDevice[old.device] = with
		}
		return
	}
	for p := r.byDevice[old.device]; p != nil; p = p.next {
		if p.next == old {
			p.next = with
			return
		}
	}
}

// drop ends cl's route, and the publishes queued for it that its writer
// has not readied yet. It reports whether cl had a route, and how many
// publishes it dropped.
func (r *commandRoutes) drop(cl *mqtt.Client) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt := r.byClient[cl]
	if rt == nil {
		return false, 0
	}
	delete(r.byClient, cl)
	delete(r.held, rt)
	r.replace(rt, rt.next)
	rt.ended = routeDropped
	return true, len(r.takeUnprepared(rt)) // the session is gone
}

// takeUnprepared takes the publishes queued for rt that its writer has
// not prepared yet off its queue and returns them. r.mu is held.
func (r *commandRoutes) takeUnprepared(rt *commandRoute) []packets.Packet {
	queue, ok := r.pending[rt]
	if !ok {
		return nil
	}
	var taken []packets.Packet
	kept := queue[:0]
	for _, pk := range queue {
		if pk.PacketID == 0 {
			taken = append(taken, pk)
		} else {
			kept = append(kept, pk)
		}
	}
	clear(queue[len(kept):])
	r.pending[rt] = kept
	return taken
}

// moveSession runs handOver, which moves old's session to cl, then gives
// old's route to cl, under r.mu: no command is readied for old meanwhile
// (prepareCommand). Publishes waiting for old's connection, or held, stay
// with it: they are in the session's in-flight messages, which cl sends
// again. Those not readied yet go to cl.
func (r *commandRoutes) moveSession(old, cl *mqtt.Client, handOver func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	handOver()
	prev := r.byClient[old]
	if prev == nil {
		return
	}
	delete(r.byClient, old)
	delete(r.held, prev)
	rt := &commandRoute{cl: cl, device: prev.device, qos: prev.qos, next: prev.next}
	r.byClient[cl] = rt
	r.replace(prev, rt)
	prev.ended, prev.movedTo = routeMoved, rt
	r.pushFront(rt, r.takeUnprepared(prev)...)
}

// pushFront queues pks ahead of what waits for rt, whatever its queue
// holds, and starts rt's writer unless it runs. r.mu is held.
func (r *commandRoutes) pushFront(rt *commandRoute, pks ...packets.Packet) {
	if len(pks) == 0 || r.closed {
		return
	}
	queue, running := r.pending[rt]
	r.pending[rt] = append(pks, queue...)
	if !running {
		r.writers.Add(1)
		go r.drain(rt)
	}
}

// current returns the route that serves what was queued for rt: rt, or
// the route its session moved to; nil when it was dropped. r.mu is held.
func (r *commandRoutes) current(rt *commandRoute) *commandRoute {
	for rt != nil && rt.ended == routeMoved {
		rt = rt.movedTo
	}
	if rt != nil && rt.ended == routeDropped {
		return nil
	}
	return rt
}

// holds reports whether cl has a route for filter.
func (r *commandRoutes) holds(cl *mqtt.Client, filter string) bool {
	device, ok := commandsFilterDevice(filter)
	if !ok {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rt := r.byClient[cl]
	return rt != nil && rt.device == device
}

// routesOther reports whether cl has a route of a device other than
// device.
func (r *commandRoutes) routesOther(cl *mqtt.Client, device string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt := r.byClient[cl]
	return rt != nil && rt.device != device
}

// count returns how many routes cl has: 0 or 1.
func (r *commandRoutes) count(cl *mqtt.Client) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byClient[cl] != nil {
		return 1
	}
	return 0
}

// of returns the routes of device.
func (r *commandRoutes) of(device string) []*commandRoute {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*commandRoute
	for rt := r.byDevice[device]; rt != nil; rt = rt.next {
		out = append(out, rt)
	}
	return out
}

// reaches reports whether a client has a route of device.
func (r *commandRoutes) reaches(device string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byDevice[device] != nil
}

// What hold decided for a publish.
const (
	writeNow    = iota
	heldByUs    // in commandRoutes.held, written on a PUBACK (release)
	heldByMochi // the route became a mochi subscription: mochi's to send
)

// hold keeps the publish of packet id in rt's session unwritten when
// rt's client has limit publishes unacknowledged (unacked counts them,
// this one and those held included), or publishes held or released
// before it, and says who holds it. limit 0 is no limit. r.mu is held:
// a PUBACK's release sees the publish held, or hold sees the PUBACK.
func (r *commandRoutes) hold(rt *commandRoute, id uint16, unacked, limit int) int {
	held := r.held[rt]
	switch {
	case limit == 0 || len(held) == 0 && !r.released(rt) && unacked <= limit:
		return writeNow
	case rt.ended == routeDemoted:
		return heldByMochi // demoted while the publish was readied
	}
	r.held[rt] = append(held, id)
	return heldByUs
}

// released reports whether a publish released from rt's held ones waits
// to be written (it has its packet id). r.mu is held.
func (r *commandRoutes) released(rt *commandRoute) bool {
	for _, pk := range r.pending[rt] {
		if pk.PacketID != 0 {
			return true
		}
	}
	return false
}

// release takes the oldest publish held for cl's route and queues it
// ahead of the others, now that one of cl's publishes was acknowledged,
// if fewer than cl's Receive Maximum are unacknowledged and written
// (unacked counts the held ones too); one the session no longer holds is
// passed over.
func (r *commandRoutes) release(cl *mqtt.Client, unacked func(*mqtt.Client) int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt := r.byClient[cl]
	if rt == nil || len(r.held[rt]) == 0 || unacked(cl)-len(r.held[rt]) >= receiveMaximum(cl) {
		return
	}
	for len(r.held[rt]) > 0 {
		var id uint16
		id, r.held[rt] = r.held[rt][0], r.held[rt][1:]
		if pk, ok := cl.State.Inflight.Get(id); ok {
			r.pushFront(rt, pk)
			break
		}
	}
	if len(r.held[rt]) == 0 {
		delete(r.held, rt)
	}
}

// write queues pk for rt's connection, and starts its writer unless it
// runs: a publish without a packet id is prepared first, on the writer
// (prepare), so that the caller never waits for the client. It reports
// false when the route has maxPending publishes queued already, or after
// close.
func (r *commandRoutes) write(rt *commandRoute, pk packets.Packet) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	queue, running := r.pending[rt]
	if r.closed || len(queue) >= r.maxPending {
		return false // a publish released from held ones is queued by pushFront
	}
	r.pending[rt] = append(queue, pk)
	if !running {
		r.writers.Add(1)
		go r.drain(rt)
	}
	return true
}

// drain prepares and writes rt's queued publishes in order until none is
// left. A write that fails leaves its publish in the session.
func (r *commandRoutes) drain(rt *commandRoute) {
	defer r.writers.Done()
	for {
		r.mu.Lock()
		queue := r.pending[rt]
		if len(queue) == 0 {
			delete(r.pending, rt)
			r.mu.Unlock()
			return
		}
		pk := queue[0]
		queue[0] = packets.Packet{}
		r.pending[rt] = queue[1:]
		r.mu.Unlock()
		if pk.PacketID == 0 && !r.prepare(rt, &pk) {
			continue
		}
		if err := rt.cl.WritePacket(pk); err != nil {
			r.log.Debug("mqtt command publish not written", "client", rt.cl.ID, "error", err)
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
		if device, qos, ok := h.routable(cl, pk); ok {
			return true, h.subscribeRoute(cl, pk, device, qos)
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
// through compatRead, and which device's at which QoS: one filter,
// devices/{id}/commands of a device cl may subscribe to, at QoS 1 or
// more, without a subscription identifier, within the subscription
// limit, and held neither as a mochi subscription nor by cl's route of
// another device. The topic holds no retained message to send: the hub
// publishes commands unretained, and no client's publish or will reaches
// it (publishWill).
func (h *brokerHook) routable(cl *mqtt.Client, pk packets.Packet) (device string, qos byte, ok bool) {
	caps := h.server.Options.Capabilities
	if h.commands == nil || len(pk.Filters) != 1 || caps.MaximumQos == 0 ||
		pk.SubscribeValidate() != packets.CodeSuccess {
		return "", 0, false
	}
	f := pk.Filters[0]
	device, ok = commandsFilterDevice(f.Filter)
	if !ok || f.Qos == 0 || f.Identifier != 0 || h.auth != nil && device != string(cl.Properties.Username) {
		return "", 0, false
	}
	if v, ok := h.conns.Load(cl); !ok || v.(*mqttConn).ack.overLimit != nil || v.(*mqttConn).ack.id == 0 {
		return "", 0, false
	}
	if _, held := cl.State.Subscriptions.Get(f.Filter); held || h.routes.routesOther(cl, device) {
		return "", 0, false
	}
	return device, min(f.Qos, caps.MaximumQos), true
}

// subscribeRoute routes device's commands to cl at qos, answers pk, the
// SUBSCRIBE, and has the device's unconfirmed commands sent.
func (h *brokerHook) subscribeRoute(cl *mqtt.Client, pk packets.Packet, device string, qos byte) error {
	if h.routes.add(cl, device, qos) {
		atomic.AddInt64(&h.server.Info.Subscriptions, 1)
	}
	ack := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Suback},
		PacketID:    pk.PacketID, // compatEncode puts the client's id back
		ReasonCodes: []byte{qos},
		Properties:  packets.Properties{User: pk.Properties.User},
	}
	if err := cl.WritePacket(ack); err != nil {
		return err
	}
	h.commands.Connected(device)
	return nil
}

// lockInflight locks cl's in-flight messages against its packets'
// processing, for a goroutine other than its reader that writes them
// (mqttSession.inflight), and returns the lock to unlock; nil for a
// client without a connection, which no packet of is processed.
func (h *brokerHook) lockInflight(cl *mqtt.Client) *sync.Mutex {
	if h.inflightLock == nil {
		return nil
	}
	mu := h.inflightLock(cl)
	if mu != nil {
		mu.Lock()
	}
	return mu
}

// demote turns cl's route of device, if any, into a mochi subscription.
// The publishes the route held for the client's Receive Maximum are
// mochi's held ones then, which it sends as the client's quota allows.
// The client's reader calls it while it processes a packet; any other
// goroutine holds the client's in-flight lock (lockInflight).
func (h *brokerHook) demote(cl *mqtt.Client, device string) {
	rt, held := h.routes.remove(cl, device)
	if rt == nil {
		return
	}
	sub := packets.Subscription{Filter: commandsTopic(device), Qos: rt.qos}
	h.server.Topics.Subscribe(cl.ID, sub) // counted already, as the route
	cl.State.Subscriptions.Add(sub.Filter, sub)
	for _, id := range held {
		if pk, ok := cl.State.Inflight.Get(id); ok {
			pk.Expiry = -1 // mochi's mark for a publish to send once the quota allows
			cl.State.Inflight.Set(pk)
		}
	}
}

// unsubscribeClient drops every subscription of cl's session: mochi's and
// its routes.
func (h *brokerHook) unsubscribeClient(cl *mqtt.Client) {
	h.server.UnsubscribeClient(cl)
	if routed, dropped := h.routes.drop(cl); routed {
		atomic.AddInt64(&h.server.Info.Subscriptions, -1)
		h.dropped.Add(float64(dropped))
	}
}

// publishCommand queues a command publish on topic for a client with a
// route, without waiting for the client: its writer prepares it
// (prepareCommand) and writes it. A route with MaxQueued publishes
// queued drops it, as mochi drops a publish for a client whose writes
// pile up.
func (h *brokerHook) publishCommand(rt *commandRoute, topic string, payload []byte) {
	out := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, // routes are QoS 1 or 2
		TopicName:   topic,
		Payload:     payload,
		Origin:      mqtt.InlineClientId,
		Created:     time.Now().Unix(),
	}
	if max := h.server.Options.Capabilities.MaximumMessageExpiryInterval; max > 0 {
		out.Expiry = out.Created + max
	}
	if !h.routes.write(rt, out) {
		atomic.AddInt64(&h.server.Info.MessagesDropped, 1)
		h.OnPublishDropped(rt.cl, out)
	}
}

// prepareCommand readies a command publish for rt's client as mochi
// readies a publish for a subscriber: within the session's limits, with
// a packet id of the session's, kept in its in-flight messages until the
// PUBACK. It reports whether to write it now: not when it is held while
// the client's Receive Maximum is reached (a PUBACK releases it), nor
// while its client is away or not yet answered its CONNECT (the session
// sends it again once it is), nor when it is dropped. A publish whose
// route moved on meanwhile goes to the route of the new client, and one
// whose route was dropped is dropped.
func (h *brokerHook) prepareCommand(rt *commandRoute, out *packets.Packet) bool {
	cl, srv := rt.cl, h.server
	if mu := h.lockInflight(cl); mu != nil {
		defer mu.Unlock()
	}
	id, err := cl.NextPacketID() // under the client's lock, which a write holds
	if err != nil {
		atomic.AddInt64(&srv.Info.InflightDropped, 1)
		srv.Log.Warn("packet ids exhausted", "error", err, "client", cl.ID, "listener", cl.Net.Listener)
		return false
	}

	// The route's end, if any, is decided under r.mu: the session's
	// records are made only for a route that still serves this client.
	r := h.routes
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur := r.current(rt); cur == nil {
		h.dropped.Inc()
		return false
	} else if cur != rt && cur.cl != cl {
		r.pushFront(cur, *out) // readied for the new client by its writer
		return false
	}
	if !h.deliver(cl) { // the session's limits, as for a subscriber's delivery
		return false
	}
	if cl.State.Inflight.Len() >= int(srv.Options.Capabilities.MaximumInflight) {
		atomic.AddInt64(&srv.Info.InflightDropped, 1)
		srv.Log.Warn("client store quota reached", "client", cl.ID, "listener", cl.Net.Listener)
		return false
	}
	if cl.Properties.Props.TopicAliasMaximum > 0 {
		alias, exists := cl.State.TopicAliases.Outbound.Set(out.TopicName)
		if out.Properties.TopicAlias = alias; alias > 0 {
			out.Properties.TopicAliasFlag = true
			if exists {
				out.TopicName = ""
			}
		}
	}
	out.PacketID = uint16(id)
	if cl.State.Inflight.Set(*out) {
		atomic.AddInt64(&srv.Info.Inflight, 1)
		h.OnQosPublish(cl, *out, out.Created, 0)
		cl.State.Inflight.DecreaseSendQuota()
	}
	if cl.Net.Conn == nil || cl.Closed() || h.connacked != nil && !h.connacked(cl) {
		return false
	}
	switch r.hold(rt, out.PacketID, h.commandsUnacked(cl), receiveMaximum(cl)) {
	case heldByUs:
		return false
	case heldByMochi:
		out.Expiry = -1 // mochi's mark for a publish to send once the quota allows
		cl.State.Inflight.Set(*out)
		return false
	}
	return true
}

// receiveMaximum is how many QoS 1 and 2 publishes an MQTT 5 client takes
// unacknowledged; 0 for no limit.
func receiveMaximum(cl *mqtt.Client) int {
	if cl.Properties.ProtocolVersion < 5 {
		return 0
	}
	return int(cl.Properties.Props.ReceiveMaximum)
}
