package devices

import (
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// This file holds the hook's side of BrokerLimits: deliveries refused to
// full sessions, retained messages over their limits, expired and evicted
// sessions cleaned up, and every message dropped on the way counted in
// telehub_mqtt_dropped_total.

// deliver reports whether a message may be delivered to (or queued for)
// cl: not when its session holds MaxQueued messages or MaxQueuedBytes, or
// all sessions together MaxQueuedBytesTotal. A refused delivery is
// counted as dropped.
func (h *brokerHook) deliver(cl *mqtt.Client) bool {
	if cl.Net.Inline || h.queues.allow(cl) {
		return true
	}
	h.dropped.Inc()
	h.dropLog.Warn("mqtt message dropped: session full", "client", cl.ID,
		"queued", cl.State.Inflight.Len(), "limit", h.limits.MaxQueued,
		"limit_bytes", h.limits.MaxQueuedBytes)
	return false
}

// subscribing reports whether cl's ACL check is for a filter of the
// SUBSCRIBE being handled rather than for a delivery.
func (h *brokerHook) subscribing(cl *mqtt.Client) bool {
	v, ok := h.conns.Load(cl)
	return ok && v.(*mqttConn).subscribing.Load()
}

// limitRetain keeps pk from being retained when that would pass the
// retained limits; it is then delivered (and ingested) unretained, and
// counted as dropped. An empty retained publish clears and always passes.
func (h *brokerHook) limitRetain(pk packets.Packet) packets.Packet {
	if !pk.FixedHeader.Retain || len(pk.Payload) == 0 {
		return pk
	}
	if h.retained.allow(pk.TopicName, topicDevice(pk.TopicName), retainedSize(&pk)) {
		return pk
	}
	pk.FixedHeader.Retain = false
	h.dropped.Inc()
	h.dropLog.Warn("mqtt message not retained: retained limit reached", "limit", h.limits.MaxRetained,
		"limit_per_device", h.limits.MaxRetainedPerDevice, "limit_bytes", h.limits.MaxRetainedBytes)
	return pk
}

// OnWill keeps a will from being retained past the retained limits.
func (h *brokerHook) OnWill(_ *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if will.Retain && len(will.Payload) > 0 &&
		!h.retained.allow(will.TopicName, topicDevice(will.TopicName), len(will.TopicName)+len(will.Payload)) {
		will.Retain = false
		h.dropped.Inc()
	}
	return will, nil
}

// OnRetainMessage follows mochi's retained store: r is 1 when pk is now
// retained, else its topic retains nothing.
func (h *brokerHook) OnRetainMessage(_ *mqtt.Client, pk packets.Packet, r int64) {
	device := topicDevice(pk.TopicName)
	if r == 1 {
		h.retained.set(pk.TopicName, device, retainedSize(&pk))
		return
	}
	h.retained.clear(pk.TopicName, device)
}

// OnRetainedExpired follows mochi's retained store.
func (h *brokerHook) OnRetainedExpired(topic string) {
	h.retained.clear(topic, topicDevice(topic))
}

// OnQosDropped counts a stored message a session lost: expired, cleared
// by a clean start, or with its session. Messages moved to the connection
// that took a session over are not lost.
func (h *brokerHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Type == packets.Publish && !h.isTakenOver(cl) {
		h.dropped.Inc()
	}
}

// OnClientExpired releases a session that expired: its subscriptions and
// messages (mochi forgets the client but not its subscriptions).
func (h *brokerHook) OnClientExpired(cl *mqtt.Client) { h.release(cl) }

// sessionEnded follows the end of cl's connection: a session that
// outlives it is parked (the oldest parked one is the first makeRoom
// drops); one that does not is no longer counted.
func (h *brokerHook) sessionEnded(cl *mqtt.Client, expire bool) {
	if expire || h.isTakenOver(cl) {
		h.queues.forget(cl)
		return
	}
	h.mu.Lock()
	h.parked[cl] = time.Now()
	h.mu.Unlock()
}

// release drops the subscriptions and stored messages of cl's session.
func (h *brokerHook) release(cl *mqtt.Client) {
	h.unsubscribeClient(cl)
	cl.ClearInflights()
	h.forgetInflight(cl)
	h.queues.forget(cl)
	h.mu.Lock()
	delete(h.parked, cl)
	h.mu.Unlock()
}

// makeRoom runs before cl's session is set up. A session cl resumes is no
// longer parked; a new one must fit within MaxSessions: past it, the
// session parked the longest is dropped.
func (h *brokerHook) makeRoom(cl *mqtt.Client) {
	if old, resumes := h.server.Clients.Get(cl.ID); resumes {
		h.mu.Lock()
		delete(h.parked, old)
		h.mu.Unlock()
		h.queues.forget(old) // counted afresh under cl
		return
	}
	// The inline client is one of the broker's clients.
	if h.server.Clients.Len()-1 < h.limits.MaxSessions {
		return
	}
	h.mu.Lock()
	var oldest *mqtt.Client
	var since time.Time
	for p, at := range h.parked {
		if oldest == nil || at.Before(since) {
			oldest, since = p, at
		}
	}
	h.mu.Unlock()
	if oldest == nil {
		return // all connected: MaxClients refuses new ones
	}
	h.release(oldest)
	if cur, ok := h.server.Clients.Get(oldest.ID); ok && cur == oldest {
		h.server.Clients.Delete(oldest.ID)
	}
	h.dropLog.Warn("mqtt session dropped: session limit reached", "client", oldest.ID,
		"limit", h.limits.MaxSessions)
}
