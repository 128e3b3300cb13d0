package devices

import (
	"errors"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/telehub/telehub/bridge"
)

// mqttAcks lets many QoS 1 telemetry publishes of one connection wait for
// their commits at once. The connection's read goroutine adds each
// publish (add) and goes on reading; the store's writer reports each
// commit (the add's done); the PUBACKs are written in the order the
// publishes were received, each only once its own commit is done and
// every earlier publish is acknowledged or given up, several in one write.
//
// Writes happen on a goroutine started when the oldest waiting publish is
// committed and ending when no committed publish is left to acknowledge,
// so an idle connection holds none. close stops it and waits for it.
type mqttAcks struct {
	cl  *mqtt.Client
	max int
	// info counts the packets and bytes written, like mochi's own writes.
	info *mqttWriteCounts
	// fail records a publish whose commit failed; it is left
	// unacknowledged, and the device resends it.
	fail func(in bridge.Input, err error)

	mu sync.Mutex
	// queue holds the publishes not acknowledged yet, oldest first; the
	// first has sequence number first.
	queue   []mqttPendingAck
	first   uint64
	writing bool
	// broken is set once a write failed: the connection is gone.
	broken bool
	// closed is set once the connection ended: nothing is written.
	closed bool
	wg     sync.WaitGroup
	// moved is signalled (without blocking) whenever the writer finished
	// writing a batch: the read goroutine waits on it for room or for the
	// queue to empty.
	moved chan struct{}
	// buf is the writer's batch of PUBACKs; only the writer uses it.
	buf []byte
}

// mqttPendingAck is one publish waiting for its commit.
type mqttPendingAck struct {
	id   uint16
	done bool
	err  error // the commit's failure, when done
	in   bridge.Input
}

// mqttWriteCounts are the counters of mochi's server info that the
// PUBACKs written here add to.
type mqttWriteCounts struct {
	packets *int64
	bytes   *int64
}

func newMQTTAcks(cl *mqtt.Client, max int, info *mqttWriteCounts, fail func(bridge.Input, error)) *mqttAcks {
	return &mqttAcks{cl: cl, max: max, info: info, fail: fail, moved: make(chan struct{}, 1)}
}

// add queues the publish with packet id and returns the callback its
// commit reports to. The read goroutine calls it after waitRoom.
func (a *mqttAcks) add(id uint16, in bridge.Input) func(bridge.Result) {
	a.mu.Lock()
	defer a.mu.Unlock()
	seq := a.first + uint64(len(a.queue))
	a.queue = append(a.queue, mqttPendingAck{id: id, in: in})
	return func(r bridge.Result) { a.committed(seq, r.Err) }
}

// cancel removes the publish added last, whose submission failed: its
// callback is never called.
func (a *mqttAcks) cancel() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.queue[len(a.queue)-1] = mqttPendingAck{}
	a.queue = a.queue[:len(a.queue)-1]
}

// committed records the commit of publish seq (err nil when it is
// durably stored) and starts the writer when the oldest publish is done.
// It runs on the store's writer goroutine: it never blocks on the client.
func (a *mqttAcks) committed(seq uint64, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := seq - a.first
	if seq < a.first || i >= uint64(len(a.queue)) {
		return
	}
	a.queue[i].done, a.queue[i].err = true, err
	if i == 0 && !a.writing && !a.closed {
		a.writing = true
		a.wg.Add(1)
		go a.write()
	}
}

// write acknowledges the committed publishes at the head of the queue,
// in batches, until the head is one still waiting for its commit.
func (a *mqttAcks) write() {
	defer a.wg.Done()
	var failed []mqttPendingAck
	for {
		a.mu.Lock()
		a.buf, failed = a.take(a.buf[:0], failed[:0])
		if len(a.buf) == 0 && len(failed) == 0 {
			if cap(a.buf) > 4*mqttAcksKept {
				a.buf = nil
			}
			a.writing = false
			a.mu.Unlock()
			a.signal()
			return
		}
		skip := a.closed || a.broken
		a.mu.Unlock()
		if len(a.buf) > 0 && !skip {
			a.flush()
		}
		for _, p := range failed {
			a.fail(p.in, p.err)
		}
		a.signal()
	}
}

// take removes the done publishes at the head of the queue, appending the
// PUBACKs of the stored ones to buf and the failed ones to failed. a.mu
// is held.
func (a *mqttAcks) take(buf []byte, failed []mqttPendingAck) ([]byte, []mqttPendingAck) {
	n := 0
	for n < len(a.queue) && a.queue[n].done {
		p := &a.queue[n]
		if p.err != nil {
			failed = append(failed, *p)
		} else {
			buf = append(buf, packets.Puback<<4, 2, byte(p.id>>8), byte(p.id))
		}
		n++
	}
	if n > 0 {
		rest := copy(a.queue, a.queue[n:])
		clear(a.queue[rest:])
		a.queue = a.queue[:rest]
		a.first += uint64(n)
	}
	if len(a.queue) == 0 && cap(a.queue) > mqttAcksKept {
		a.queue = nil // a burst is over: an idle connection keeps little
	}
	return buf, failed
}

// mqttAcksKept is the capacity of the queue and the PUBACK batch (in
// publishes) a connection keeps between bursts.
const mqttAcksKept = 16

// flush writes the batch in a.buf under the client's lock, which mochi
// holds for each of its own writes. A PUBACK of remaining length 2 is a
// success in MQTT 3.1.1 and 5 alike. A failed write means the connection
// is gone: mochi ends it, and the device resends what it did not get.
func (a *mqttAcks) flush() {
	conn := a.cl.Net.Conn
	if conn == nil {
		return // a client without a network connection (mochi's own)
	}
	a.cl.Lock()
	refreshWriteDeadline(a.cl) // the commits may have outlasted the keepalive's
	n, err := conn.Write(a.buf)
	a.cl.Unlock()
	atomic.AddInt64(a.info.packets, int64(n/4))
	atomic.AddInt64(a.info.bytes, int64(n))
	if err != nil {
		a.mu.Lock()
		a.broken = true
		a.mu.Unlock()
	}
}

func (a *mqttAcks) signal() {
	select {
	case a.moved <- struct{}{}:
	default:
	}
}

// waitRoom waits until fewer than max publishes wait for their PUBACK. It
// returns false when stop is closed or the connection broke first.
func (a *mqttAcks) waitRoom(stop <-chan struct{}) bool {
	return a.wait(stop, func() bool { return len(a.queue) < a.max })
}

// drain waits until every queued publish is acknowledged or given up, so
// that an answer mochi writes next comes after their PUBACKs. It returns
// false when stop is closed or the connection broke first.
func (a *mqttAcks) drain(stop <-chan struct{}) bool {
	return a.wait(stop, func() bool { return len(a.queue) == 0 && !a.writing })
}

// wait waits until ok holds (checked under a.mu).
func (a *mqttAcks) wait(stop <-chan struct{}, ok func() bool) bool {
	for {
		a.mu.Lock()
		done, broken := ok(), a.broken || a.closed
		a.mu.Unlock()
		switch {
		case done:
			return true
		case broken:
			return false
		}
		select {
		case <-a.moved:
		case <-stop:
			return false
		}
	}
}

// close stops acknowledging (the connection ended) and waits for the
// writer. Commits reported later are ignored.
func (a *mqttAcks) close() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.wg.Wait()
}

// errAckDeferred is handle's outcome for a QoS 1 publish submitted for
// commit whose PUBACK mqttAcks writes.
var errAckDeferred = errors.New("acknowledged after its commit")

// canDefer reports whether the PUBACK of publish pk of connection c may
// follow its commit without holding up c's next packets: a QoS 1 publish
// that mochi has nothing else to do with, being neither retained nor
// forwarded to a subscriber. The others keep mochi's answer, written after
// the commit and after it forwarded them.
func (h *brokerHook) canDefer(c *mqttConn, pk *packets.Packet) bool {
	if pk.FixedHeader.Qos != 1 || pk.FixedHeader.Retain || c.cl == nil {
		return false
	}
	subs := h.server.Topics.Subscribers(pk.TopicName)
	return len(subs.Subscriptions) == 0 && len(subs.Shared) == 0 && len(subs.InlineSubscriptions) == 0
}

// storeDeferred submits QoS 1 telemetry of connection c and returns
// errAckDeferred: its PUBACK is written after its commit, in order. While
// the connection has receiveMax publishes waiting, it first waits for the
// oldest to be acknowledged, and so reads nothing more from the client.
// A refusal is answered like storeAndWait's.
func (h *brokerHook) storeDeferred(c *mqttConn, id uint16, in bridge.Input, p bridge.Payload) error {
	if c.acks == nil {
		c.acks = newMQTTAcks(c.cl, h.receiveMax, &h.counts, h.commitFailed)
	}
	if !c.acks.waitRoom(h.closing) {
		return packets.ErrRejectPacket // closing: not stored, resent
	}
	if err := h.ingest.bridge.Telemetry(in, p, c.acks.add(id, in)); err != nil {
		c.acks.cancel()
		refused := mqttStoreError(err)
		h.reject(in, refused)
		return &mqttRefusal{err: refused, resend: !acknowledgeRefusal(err)}
	}
	return errAckDeferred
}

// commitFailed records a deferred publish whose commit failed; it stays
// unacknowledged.
func (h *brokerHook) commitFailed(in bridge.Input, err error) { h.reject(in, mqttStoreError(err)) }
