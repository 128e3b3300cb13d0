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
// broker acknowledged its message (QoS 1), at most RemoveInterval later
// (see tidy). Until then it is published again: after a failed or
// timed-out batch, on every new connection, and from the oldest entry
// after a restart. A peer may therefore receive a
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
// outbox; after a failure it tries again after Retry, and while
// forwarded messages wait for their removal it comes back after
// RemoveInterval.
func (c *Cluster) run() {
	defer c.stop.Exit()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-c.stop.Done():
			return
		case <-c.wake:
		case <-retry.C:
		}
		err := c.step()
		switch {
		case err != nil:
			if !errors.Is(err, errStopping) {
				c.log.Warn("forwarding to the peer hubs paused", "err", err, "retry_in", c.cfg.Retry)
			}
			retry.Reset(c.cfg.Retry)
		case c.fw.tidyDue():
			retry.Reset(c.cfg.RemoveInterval)
		}
	}
}

// errStopping: Shutdown interrupted a wait.
var errStopping = errors.New("cluster: stopping")

// errOffline: the broker client is not connected.
var errOffline = errors.New("not connected to the broker")

// step restates the presence of the local devices when the peers saw
// the will, announces, forwards until the outbox is empty, and removes
// what was forwarded (see tidy).
func (c *Cluster) step() error {
	c.restate()
	if !c.links.Broker.Connected() {
		return errOffline
	}
	if err := c.announce(); err != nil {
		return err
	}
	for {
		n, err := c.forwardBatch()
		if err != nil {
			return err
		}
		if err := c.tidy(n == 0); err != nil || n == 0 {
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

// restate has the presence of the WebSocket devices online through this
// hub stated again, once after each Rejoined. The writes reach the outbox
// through the bridge's Forwarder, like any presence change.
func (c *Cluster) restate() {
	if !c.rejoined.Swap(false) {
		return
	}
	n := c.links.Local.Restate(bridge.TransportWS)
	c.log.Info("presence of the WebSocket devices stated again to the peers", "devices", n)
}

// forwardState is what the forwarder goroutine keeps from batch to batch;
// nothing else touches it.
type forwardState struct {
	// acked is the last outbox id whose message the broker acknowledged
	// during this run: the next batch starts after it, whether or not its
	// removal is committed yet. A restart starts again from the oldest
	// entry left.
	acked uint64
	// removedUpTo is the last id whose removal was committed.
	removedUpTo uint64
	// removing carries the outcome of the removal in flight, of the
	// entries up to removingUpTo; nil when none is in flight.
	removing     chan error
	removingUpTo uint64
	// lastRemoval is when the last removal was submitted.
	lastRemoval time.Time
}

// tidyDue reports whether the forwarder has removals to finish: a removal
// in flight, or acknowledged messages not removed yet.
func (f *forwardState) tidyDue() bool {
	return f.removing != nil || f.removedUpTo < f.acked
}

// forwardBatch publishes the oldest outbox messages not yet acknowledged,
// at most Batch, and waits for the broker's acknowledgements. It returns
// how many it forwarded. Their removal from the outbox is left to tidy.
func (c *Cluster) forwardBatch() (int, error) {
	entries, err := c.cfg.Store.Outbox(c.fw.acked, c.cfg.Batch)
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
	c.fw.acked = entries[len(entries)-1].ID
	return len(entries), nil
}

// tidy removes from the outbox what the broker acknowledged: one removal
// at a time, at most one per RemoveInterval, so that removals do not cost
// a commit each of their own while the hub is busy. With idle (nothing
// left to forward) it waits for the removal in flight; otherwise it only
// collects its outcome when it is there. A failed removal leaves the
// messages in the outbox; the next one takes them too.
func (c *Cluster) tidy(idle bool) error {
	if err := c.removed(idle); err != nil || c.fw.removing != nil {
		return err
	}
	if c.fw.removedUpTo >= c.fw.acked || time.Since(c.fw.lastRemoval) < c.cfg.RemoveInterval {
		return nil
	}
	removing := make(chan error, 1) // the store's Done never blocks
	w := &bridge.Write{ForwardedUpTo: c.fw.acked, Done: func(r bridge.Result) { removing <- r.Err }}
	if err := c.cfg.Store.Submit(w); err != nil {
		return fmt.Errorf("remove forwarded messages: %w", err)
	}
	c.fw.removing, c.fw.removingUpTo, c.fw.lastRemoval = removing, c.fw.acked, time.Now()
	return nil
}

// removed collects the outcome of the removal in flight, if any: with
// wait it waits for it, otherwise it returns nil while it is pending.
func (c *Cluster) removed(wait bool) error {
	if c.fw.removing == nil {
		return nil
	}
	var err error
	if wait {
		select {
		case err = <-c.fw.removing:
		case <-c.stop.Done():
			return errStopping
		}
	} else {
		select {
		case err = <-c.fw.removing:
		default:
			return nil
		}
	}
	c.fw.removing = nil
	if err != nil {
		return fmt.Errorf("remove forwarded messages: %w", err)
	}
	c.fw.removedUpTo = c.fw.removingUpTo
	return nil
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
		case <-c.stop.Done():
			return errStopping
		}
	}
	return nil
}
