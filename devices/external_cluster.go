package devices

import (
	"context"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/telehub/telehub/bridge"
)

// Peers is what the external broker client needs from the cluster of
// replicas it serves (*cluster.Cluster), when the hub runs in one.
type Peers interface {
	// Filters are subscriptions made besides the device topics.
	Filters() map[string]byte
	// Will is the client's last will, published retained at QoS 1 when
	// the connection that publishes the cluster's messages dies.
	Will() (topic string, payload []byte)
	// Connected is called after each connection: of the device
	// connection once subscribed, and of the publishing connection (which
	// replaces the will it left, if any, by announcing the hub again).
	Connected()
	// Rejoined is called when the publishing connection is back after it
	// was lost, before Connected: the broker sent the will that connection
	// carried (unless the new connection took the old one's session over
	// before the broker saw it end), so the peers took the devices
	// connected through this hub for offline. It must not block.
	Rejoined()
	// Message sees every message first; for one of the cluster's topics it
	// returns true and calls done exactly once (after the commit of what it
	// stores), which releases the message's acknowledgement. It must not
	// block on the network.
	Message(topic string, payload []byte, done func(bridge.Result)) bool
	// Acked is called after each acknowledgement sent to the broker, in
	// arrival order.
	Acked(topic string, payload []byte)
}

// PublishPeers publishes a cluster message at QoS 1; the token completes
// when the broker acknowledged it. It never blocks. With Peers set it goes
// through the client's second connection (see peerPublisher), so that its
// acknowledgement is not read behind the device traffic.
//
// paho's own token does not say that: when the connection is lost first,
// paho sends the message again after reconnecting under a token of its
// own, and completes the first one at once, without error. So the token
// returned follows the session store instead, where the message stays
// until its PUBACK. A publish refused at once (not connected) returns
// paho's token and its error.
func (e *External) PublishPeers(topic string, retained bool, payload []byte) paho.Token {
	client, store := e.client, e.store
	if e.pub != nil {
		client, store = e.pub.client, e.pub.store
	}
	tok := client.Publish(topic, 1, retained, payload)
	pt, ok := tok.(*paho.PublishToken)
	if !ok || pt.MessageID() == 0 {
		return tok
	}
	return ackToken{acked: store.deleted(outboundKey(pt.MessageID()))}
}

// peerPublisher is the second connection of a hub in a cluster, with the
// client id ClientID + PeerClientSuffix and a persistent session of its
// own: it publishes the cluster's messages, carries the cluster's will
// (see peerOptions) and subscribes to nothing. On the device connection,
// a PUBACK is read only once the messages the broker sent before it are
// handed over, and that hand-over waits when the store's queue is full: a
// busy hub then stopped forwarding for as long as its PUBACKs waited, and
// its peers fell behind.
type peerPublisher struct {
	client   paho.Client
	store    *orderedStore // the session's unacknowledged publishes
	connects atomic.Uint64 // connections so far
}

// PeerClientSuffix is added to ExternalConfig.ClientID for the
// connection that publishes a hub's cluster messages.
const PeerClientSuffix = "-peers"

// newPeerPublisher returns the publisher of a hub in a cluster, nil for a
// single hub.
func (e *External) newPeerPublisher() *peerPublisher {
	if e.cfg.Peers == nil {
		return nil
	}
	p := &peerPublisher{store: newOrderedStore()}
	o := e.connOptions(e.cfg.ClientID+PeerClientSuffix, p.store).
		SetDefaultPublishHandler(func(paho.Client, paho.Message) {}). // subscribes to nothing
		SetOnConnectHandler(func(paho.Client) { e.publisherConnected(p) })
	e.peerOptions(o)
	p.client = paho.NewClient(o)
	return p
}

// connectPeers connects the publisher, when there is one, with the same
// retries as the device connection.
func (e *External) connectPeers(ctx context.Context) error {
	if e.pub == nil {
		return nil
	}
	return e.connect(ctx, e.pub.client)
}

// peersOpen reports whether the publisher, when there is one, is
// connected.
func (e *External) peersOpen() bool { return e.pub == nil || e.pub.client.IsConnectionOpen() }

// disconnectPeers disconnects the publisher, when there is one.
func (e *External) disconnectPeers() {
	if e.pub != nil {
		e.pub.client.Disconnect(externalQuiesce)
	}
}

// ackToken is the token of a cluster message: done, never with an error,
// once the broker acknowledged the message.
type ackToken struct{ acked <-chan struct{} }

func (t ackToken) Wait() bool            { <-t.acked; return true }
func (t ackToken) Done() <-chan struct{} { return t.acked }
func (t ackToken) Error() error          { return nil }

func (t ackToken) WaitTimeout(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-t.acked:
		return true
	case <-timer.C:
		return false
	}
}

// withPeerFilters adds the cluster's subscriptions to filters.
func withPeerFilters(filters map[string]byte, p Peers) map[string]byte {
	if p == nil {
		return filters
	}
	for f, qos := range p.Filters() {
		filters[f] = qos
	}
	return filters
}

// peerOptions sets the cluster's will on the connection that publishes the
// cluster's messages. The broker handles one connection's packets in
// order, so the will, sent when that connection dies, comes after every
// presence change the hub forwarded on it; on the device connection it
// could overtake the last of them (both connections end at once when the
// hub dies), and a peer would keep a device of the dead hub online.
func (e *External) peerOptions(o *paho.ClientOptions) {
	if e.cfg.Peers == nil {
		return
	}
	topic, payload := e.cfg.Peers.Will()
	o.SetBinaryWill(topic, payload, 1, true)
}

// peerMessage hands m to the cluster; false when it is not the cluster's.
func (e *External) peerMessage(m paho.Message, slot *externalAck) bool {
	return e.cfg.Peers != nil && e.cfg.Peers.Message(m.Topic(), m.Payload(), slot.committed)
}

// peersConnected tells the cluster a connection of the client is up (the
// device connection subscribed, or the publishing connection).
func (e *External) peersConnected() {
	if e.cfg.Peers != nil {
		e.cfg.Peers.Connected()
	}
}

// publisherConnected tells the cluster the publishing connection is up,
// and, from its second connection on, that it came back after a loss:
// paho connects it once in Start and again only after losing it.
func (e *External) publisherConnected(p *peerPublisher) {
	if p.connects.Add(1) > 1 {
		e.cfg.Peers.Rejoined()
	}
	e.peersConnected()
}

// acked tells the cluster m was acknowledged.
func (e *External) acked(m paho.Message) {
	if e.cfg.Peers != nil {
		e.cfg.Peers.Acked(m.Topic(), m.Payload())
	}
}
