package cluster

import (
	"errors"
	"fmt"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/telehub/telehub/bridge"
)

// What forwarding guarantees: a write this hub acknowledged to a device is
// in its outbox (same transaction), and leaves the outbox only after the
// broker acknowledged its message (QoS 1). Until then it is published
// again: after a failed or timed-out batch, on every new connection, and
// from the oldest entry after a restart. A peer may therefore receive a
// message more than once, never zero times while the broker keeps its
// sessions (persistence on, queue limits not reached), and stores it once
// (the origin id, and the seq epoch for readings with seq, are checked in
// the transaction that stores it).

// forwardRule is the bridge's Forwarder: the readings of this hub's
// WebSocket devices, and their presence changes, unless the device is
// online through a peer (a presence change this hub makes about a peer's
// device, when the peer died, is its own view and not forwarded).
type forwardRule struct{ c *Cluster }

func (f forwardRule) Telemetry(in *bridge.Input, p *bridge.Payload) []byte {
	if in.Transport != bridge.TransportWS || in.Raw == nil || in.Origin != nil {
		return nil
	}
	return telemetryBody(in.Device, len(p.Readings), in.Received, in.Raw)
}

func (f forwardRule) Presence(device string, p *bridge.Presence, at time.Time) []byte {
	if p.Transport != bridge.TransportWS {
		return nil
	}
	if _, ok := f.c.peers.get(device); ok {
		return nil
	}
	return presenceBody(device, p, at)
}

// hubOnline and hubOffline are the payloads of a hub's own topic.
const (
	hubOnline  = "online"
	hubOffline = "offline"
)

// errPublish is a batch the broker did not acknowledge in time.
var errPublish = errors.New("cluster: publish not acknowledged")

// run is the forwarder goroutine: on each wake it announces the hub and
// publishes the sync marker when a connection is new, then forwards the
// outbox; after a failure it tries again after Retry.
func (c *Cluster) run() {
	defer c.wg.Done()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
		case <-retry.C:
		}
		if err := c.step(); err != nil {
			if !errors.Is(err, errStopping) {
				c.log.Warn("forwarding to the peer hubs paused", "err", err, "retry_in", c.cfg.Retry)
			}
			retry.Reset(c.cfg.Retry)
		}
	}
}

// errStopping: Shutdown interrupted a wait.
var errStopping = errors.New("cluster: stopping")

// errOffline: the broker client is not connected.
var errOffline = errors.New("not connected to the broker")

// step announces and forwards until the outbox is empty.
func (c *Cluster) step() error {
	if !c.links.Broker.Connected() {
		return errOffline
	}
	if err := c.announce(); err != nil {
		return err
	}
	for {
		n, err := c.forwardBatch()
		if err != nil || n == 0 {
			return err
		}
	}
}

// announce publishes, once per connection, the hub's "online" (retained,
// replacing its will) and its sync marker.
func (c *Cluster) announce() error {
	gen, nonce, due := c.catchup.pendingMarker()
	if !due {
		return nil
	}
	b := c.links.Broker
	toks := []paho.Token{
		b.PublishPeers(c.topics.hub(c.cfg.Node), true, []byte(hubOnline)),
		b.PublishPeers(c.topics.sync(c.cfg.Node), false, []byte(nonce)),
	}
	if err := c.await(toks); err != nil {
		return fmt.Errorf("sync marker: %w", err)
	}
	c.catchup.markerSent(gen)
	return nil
}

// forwardBatch publishes the oldest outbox messages, at most Batch, waits
// for the broker's acknowledgements, and removes them from the outbox. It
// returns how many it forwarded.
func (c *Cluster) forwardBatch() (int, error) {
	entries, err := c.cfg.Store.Outbox(0, c.cfg.Batch)
	if err != nil {
		return 0, err
	}
	c.met.ForwardBacklog.Set(float64(len(entries)))
	if len(entries) == 0 {
		return 0, nil
	}
	toks := make([]paho.Token, 0, len(entries))
	kinds := make([]byte, 0, len(entries))
	for _, e := range entries {
		m, err := wireMessage(e, c.ids)
		if err != nil {
			// Written by this package in this file's transaction: a
			// message that does not read back is dropped, not resent for
			// ever.
			c.log.Error("outbox message dropped", "err", err)
			continue
		}
		t := c.topics.ws(c.cfg.Node, m.device)
		switch m.kind {
		case outboxPresence:
			t = c.topics.presence(c.cfg.Node, m.device)
		case outboxCommand:
			t = c.topics.commands(c.cfg.Node, m.device)
		}
		toks = append(toks, c.links.Broker.PublishPeers(t, false, m.payload))
		kinds = append(kinds, m.kind)
	}
	if err := c.await(toks); err != nil {
		return 0, err
	}
	for _, k := range kinds {
		c.met.Forwarded.WithLabelValues(kindName(k)).Inc()
	}
	if err := c.remove(entries[len(entries)-1].ID); err != nil {
		return 0, err
	}
	return len(entries), nil
}

// remove removes the outbox messages up to id and waits for the commit,
// so that the next read starts after them.
func (c *Cluster) remove(id uint64) error {
	removed := make(chan error, 1) // the store's Done never blocks
	w := &bridge.Write{ForwardedUpTo: id, Done: func(r bridge.Result) { removed <- r.Err }}
	if err := c.cfg.Store.Submit(w); err != nil {
		return fmt.Errorf("remove forwarded messages: %w", err)
	}
	select {
	case err := <-removed:
		if err != nil {
			return fmt.Errorf("remove forwarded messages: %w", err)
		}
		return nil
	case <-c.done:
		return errStopping
	}
}

// kindName is the metric label of an outbox kind.
func kindName(k byte) string {
	switch k {
	case outboxPresence:
		return kindPresence
	case outboxCommand:
		return kindCommand
	}
	return kindTelemetry
}

// await waits for the broker's acknowledgement of every token, at most
// PublishTimeout in all.
func (c *Cluster) await(toks []paho.Token) error {
	deadline := time.NewTimer(c.cfg.PublishTimeout)
	defer deadline.Stop()
	for _, t := range toks {
		select {
		case <-t.Done():
			if err := t.Error(); err != nil {
				return err
			}
		case <-deadline.C:
			return errPublish
		case <-c.done:
			return errStopping
		}
	}
	return nil
}
