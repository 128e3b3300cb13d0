package cluster

import (
	"errors"
	"fmt"
	"time"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/commands"
)

// Message handles one message from the broker; the broker client calls it
// for every message, on its dispatch goroutine, before routing device
// traffic. It returns false for a message that is not the cluster's (the
// caller handles it); for the cluster's own it returns true and calls done
// exactly once: after the commit for a peer message that is stored, at
// once for the others (acknowledged: nothing to store, or a message that
// cannot be stored ever). A failed store gets done with the error, and the
// message stays unacknowledged. It never waits for the network.
func (c *Cluster) Message(name string, payload []byte, done func(bridge.Result)) bool {
	c.catchup.arrived()
	if !c.topics.owns(name) {
		return false
	}
	pt, ok := c.topics.parse(name)
	switch {
	case !ok:
		c.log.Warn("message on a cluster topic this hub does not publish: acknowledged, not stored", "topic", name)
		done(bridge.Result{})
	case pt.node == c.cfg.Node:
		c.met.Skipped.WithLabelValues("own").Inc() // our own message back, or our sync marker
		done(bridge.Result{})
	case pt.level == levelSync:
		done(bridge.Result{}) // another hub's marker: not ours to count
	case pt.device == "":
		c.hubState(pt.node, payload)
		done(bridge.Result{})
	default:
		c.ingest(pt, name, payload, done)
	}
	return true
}

// Acked is called by the broker client after it acknowledged a message;
// the acknowledgement of this connection's sync marker ends the catch-up.
func (c *Cluster) Acked(name string, payload []byte) {
	if name == c.topics.sync(c.cfg.Node) {
		c.catchup.acked(payload)
	}
}

// ingest stores a peer's forwarded reading or presence change.
func (c *Cluster) ingest(pt peerTopic, name string, payload []byte, done func(bridge.Result)) {
	m, err := parseMessage(pt.level, payload)
	if err == nil {
		switch pt.level {
		case levelWS:
			err = c.ingestFrame(pt, name, &m, done)
		case levelCommands:
			err = c.ingestCommand(pt, &m, done)
		default:
			err = c.ingestPresence(pt, &m, done)
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, errBadMessage) || errors.Is(err, bridge.ErrBadOrigin) ||
		errors.Is(err, bridge.ErrBadPresence) || errors.As(err, new(*bridge.Error)) ||
		errors.Is(err, commands.ErrBadPeerCommand) || errors.Is(err, commands.ErrInvalid):
		// It can never be stored here: acknowledged, or the broker would
		// deliver it again on every connection.
		c.log.Error("peer message refused: acknowledged, not stored", "topic", name, "err", err)
		c.met.Skipped.WithLabelValues("invalid").Inc()
		done(bridge.Result{})
	default:
		c.log.Warn("peer message not stored: left unacknowledged", "topic", name, "err", err)
		done(bridge.Result{Err: err})
	}
}

// ingestFrame stores the readings of a peer's WebSocket frame.
func (c *Cluster) ingestFrame(pt peerTopic, name string, m *peerMessage, done func(bridge.Result)) error {
	f, err := bridge.ParseFrame(m.Frame)
	if err == nil && f.Type != bridge.FrameTelemetry {
		err = fmt.Errorf("frame type %q", f.Type)
	}
	if err != nil {
		// The origin stored it, so this hub's parser disagrees: a newer
		// peer version. Acknowledge it: it can never be stored here.
		c.log.Error("peer frame refused: acknowledged, not stored", "topic", name, "err", err)
		done(bridge.Result{})
		return nil
	}
	in := bridge.Input{
		Device:      pt.device,
		Transport:   bridge.TransportWS,
		SourceTopic: name,
		Received:    time.UnixMilli(m.Seen).UTC(),
		Origin:      m.origin(pt.node),
	}
	return c.links.Bridge.Telemetry(in, f.Payload, c.stored(kindTelemetry, m.Committed, done))
}

// ingestPresence stores a peer's presence change of one of its WebSocket
// devices. An offline is stored only while the device is online through
// that peer as far as this hub knows, and not connected here: a device
// that moved to another hub stays online.
func (c *Cluster) ingestPresence(pt peerTopic, m *peerMessage, done func(bridge.Result)) error {
	p := bridge.Presence{Online: m.Presence.Online, Transport: m.Presence.Transport, Session: m.Presence.Session, Reason: m.Presence.Reason}
	if !p.Online {
		via, ok := c.peers.get(pt.device)
		if _, local := c.links.Local.Session(pt.device); !ok || via.node != pt.node || local {
			c.met.Skipped.WithLabelValues("stale").Inc()
			done(bridge.Result{})
			return nil
		}
	}
	at := time.UnixMilli(m.Seen).UTC()
	err := c.links.Bridge.PeerPresence(pt.device, p, at, m.origin(pt.node), c.stored(kindPresence, m.Committed, done))
	if err != nil {
		return err
	}
	if p.Online {
		c.peers.set(pt.device, peerDevice{node: pt.node, session: p.Session})
	} else {
		c.peers.drop(pt.device, pt.node)
	}
	return nil
}

// stored wraps the done of a peer message: it counts the message and its
// replication lag.
func (c *Cluster) stored(kind string, committedMs int64, done func(bridge.Result)) func(bridge.Result) {
	return func(r bridge.Result) {
		switch {
		case r.Err != nil:
		case r.Duplicate:
			c.met.Skipped.WithLabelValues("duplicate").Inc()
		default:
			c.met.Received.WithLabelValues(kind).Inc()
			lag := c.cfg.Now().Sub(time.UnixMilli(committedMs))
			c.met.ReplicationLag.Observe(max(lag, 0).Seconds())
		}
		done(r)
	}
}

// hubState handles a peer hub's own state: when it is offline (its will,
// or its retained will seen at subscription), the devices online through
// it go offline here, with reason disconnect: their connections ended
// with it. A device connected here meanwhile stays online.
func (c *Cluster) hubState(node string, payload []byte) {
	if string(payload) != hubOffline {
		return
	}
	now := c.cfg.Now()
	for device, d := range c.peers.of(node) {
		if _, local := c.links.Local.Session(device); !local {
			p := bridge.Presence{Online: false, Transport: bridge.TransportWS, Session: d.session, Reason: bridge.ReasonDisconnect}
			if err := c.links.Bridge.Presence(device, p, now, nil); err != nil {
				c.log.Warn("offline of a device of a dead peer not stored", "device", device, "peer", node, "err", err)
			}
		}
		c.peers.drop(device, node)
	}
}
