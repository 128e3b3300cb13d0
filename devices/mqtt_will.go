package devices

import (
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// sendWill publishes cl's will, if it has one still unsent and its
// device was not deleted, after the hook's OnWill. An MQTT 5 will with a
// delay waits for it, or for the session's end if that comes first
// (mqttWills), unless a newer connection took the session over: then the
// session either goes on, and the will is never sent, or ended, and it
// is sent at once.
func (m *mqttSessions) sendWill(cl *mqtt.Client) {
	if atomic.LoadUint32(&cl.Properties.Will.Flag) == 0 || m.willDropped(cl) {
		return
	}
	will, err := m.hook.OnWill(cl, cl.Properties.Will)
	if err != nil {
		will = cl.Properties.Will
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: will.Retain, Qos: will.Qos},
		TopicName:   will.TopicName,
		Payload:     will.Payload,
		Properties:  packets.Properties{User: will.User},
	}
	if cl.Properties.Will.WillDelayInterval > 0 && m.delayWill(cl, willDelay(cl), pk) {
		return
	}
	m.publishWill(cl.ID, pk)
	atomic.StoreUint32(&cl.Properties.Will.Flag, 0)
	m.hook.OnWillSent(cl, pk)
}

// delayWill holds cl's will for delay unless a newer connection took its
// session over, and reports whether the will is dealt with: held, or
// dropped because the new connection carries the session on or its
// device was deleted. A will of a session a clean start ended is not, nor
// one whose delay is 0 because the session ends with its connection:
// each is sent at once. Decided under m.mu, so that a new connection's
// cancel (open) comes after the hold.
func (m *mqttSessions) delayWill(cl *mqtt.Client, delay time.Duration, pk packets.Packet) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.willDropped(cl) { // decided under m.mu too (dropWills)
		atomic.StoreUint32(&cl.Properties.Will.Flag, 0)
		return true
	}
	switch m.takenOverHow(cl) {
	case 0:
		if delay == 0 {
			return false
		}
		m.wills.add(cl, delay, pk)
		return true
	case takenResumed:
		atomic.StoreUint32(&cl.Properties.Will.Flag, 0)
		return true
	}
	return false
}

// willDelay is how long the MQTT 5 will of cl waits after its connection
// ended: its delay interval, or less when the session ends first, as one
// that ends with its connection does (session expiry 0).
func willDelay(cl *mqtt.Client) time.Duration {
	props := &cl.Properties
	return min(time.Duration(props.Will.WillDelayInterval)*time.Second,
		time.Duration(props.Props.SessionExpiryInterval)*time.Second)
}

// willDropped reports whether cl's session is to end without its will.
func (m *mqttSessions) willDropped(cl *mqtt.Client) bool {
	v, ok := m.live.Load(cl)
	return ok && v.(*mqttSession).noWill.Load()
}

// dropWills makes the sessions of clients end without their wills, and
// drops the delayed wills still waiting that match. Under m.mu, so that a
// session ending meanwhile either sees its mark in delayWill or had its
// will held before and is dropped here.
func (m *mqttSessions) dropWills(clients []*mqtt.Client, match func(pk packets.Packet) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, cl := range clients {
		if v, ok := m.live.Load(cl); ok {
			v.(*mqttSession).noWill.Store(true)
		}
	}
	m.wills.cancelIf(match)
}

// sendDelayedWill publishes the will of cl whose delay passed, and
// ingests it unless a newer connection with cl's id took the session
// over meanwhile; cl's session, if the broker still holds it, has it
// sent.
func (m *mqttSessions) sendDelayedWill(cl *mqtt.Client, pk packets.Packet) {
	m.publishWill(cl.ID, pk)
	cur, ok := m.server.Clients.Get(cl.ID)
	if ok && cur != cl {
		return // the newer connection keeps its own will
	}
	if ok {
		atomic.StoreUint32(&cl.Properties.Will.Flag, 0)
	}
	m.hook.OnWillSent(cl, pk)
}

// publishWill publishes a will of client id to its subscribers, retained
// if it says so, as a publish of the broker's own from that client id.
// A will on a device's commands topic is dropped: only the hub publishes
// there (command routes rely on it), as the hook refuses any client's
// publish to it.
func (m *mqttSessions) publishWill(id string, pk packets.Packet) {
	if isCommandsTopic(pk.TopicName) {
		m.hook.dropped.Inc()
		m.log.Warn("mqtt will not published: only the hub publishes commands", "client", id, "topic", pk.TopicName)
		return
	}
	from := m.server.NewClient(nil, "", id, true)
	if pk.FixedHeader.Qos > 0 {
		pk.PacketID = 1 // needed to be valid; the broker's own publishes are never acknowledged
	}
	if err := m.server.InjectPacket(from, pk); err != nil {
		m.log.Warn("mqtt will not published", "client", id, "error", err)
		return
	}
	uncount(m.server, pk)
}

// mqttWills holds the MQTT 5 wills that wait for their delay, one per
// client id, each on a timer of its own.
type mqttWills struct {
	send func(cl *mqtt.Client, pk packets.Packet)

	mu      sync.Mutex
	closed  bool
	pending map[string]*delayedWill
	wg      sync.WaitGroup // sends under way
}

// delayedWill is a will waiting for its delay.
type delayedWill struct {
	cl    *mqtt.Client // whose will it is
	pk    packets.Packet
	timer *time.Timer // guarded by mqttWills.mu
}

func newMQTTWills(send func(cl *mqtt.Client, pk packets.Packet)) *mqttWills {
	return &mqttWills{send: send, pending: make(map[string]*delayedWill)}
}

// add sends pk, the will of cl, after delay unless cancel comes first; it
// replaces a will of cl's id still waiting.
func (w *mqttWills) add(cl *mqtt.Client, delay time.Duration, pk packets.Packet) {
	id := cl.ID
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	if old := w.pending[id]; old != nil {
		old.timer.Stop()
	}
	d := &delayedWill{cl: cl, pk: pk}
	d.timer = time.AfterFunc(delay, func() { w.fire(id, d) })
	w.pending[id] = d
}

func (w *mqttWills) fire(id string, d *delayedWill) {
	w.mu.Lock()
	if w.closed || w.pending[id] != d {
		w.mu.Unlock()
		return
	}
	delete(w.pending, id)
	w.wg.Add(1)
	w.mu.Unlock()
	defer w.wg.Done()
	w.send(d.cl, d.pk)
}

// cancel drops the will of id still waiting, if any.
func (w *mqttWills) cancel(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if d := w.pending[id]; d != nil {
		d.timer.Stop()
		delete(w.pending, id)
	}
}

// cancelIf drops the wills still waiting that match.
func (w *mqttWills) cancelIf(match func(pk packets.Packet) bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, d := range w.pending {
		if match(d.pk) {
			d.timer.Stop()
			delete(w.pending, id)
		}
	}
}

// close drops the wills still waiting and waits for those being sent.
func (w *mqttWills) close() {
	w.mu.Lock()
	w.closed = true
	for id, d := range w.pending {
		d.timer.Stop()
		delete(w.pending, id)
	}
	w.mu.Unlock()
	w.wg.Wait()
}
