package cluster

import (
	"errors"
	"strconv"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/commands"
	"github.com/telehub/telehub/storage"
)

// Commands between hubs: every change of a command that a hub makes
// (creation, sent, delivered, result, expiry, cancel) is kept in its
// outbox with the change (storage.Config.ForwardCommand = CommandBody) and
// published to telehub/{cluster}/commands/{node}/{device}; every peer
// applies the command object it carries (PeerCommands.ApplyPeer), which
// moves its copy only forward and is never forwarded again. So every hub
// keeps every command, and the hub the device is connected to delivers it.

// outboxCommand is the outbox kind of a command change.
const outboxCommand = 'c'

// kindCommand is the metric label of command messages.
const kindCommand = "command"

// PeerCommands applies peers' command changes (*commands.Service).
type PeerCommands interface {
	ApplyPeer(c bridge.Command, done func(error)) error
}

// CommandBody is the outbox body of a change of c made by this hub: the
// command object after the change. It is storage.Config.ForwardCommand in
// a cluster.
func CommandBody(c *bridge.Command) []byte {
	obj := commands.EncodePeer(c)
	b := make([]byte, 0, len(obj)+len(c.Device)+48)
	b = outboxHeader(b, outboxCommand, 1, c.Device)
	b = append(b, `{"seen":`...)
	b = strconv.AppendInt(b, c.Updated.UnixMilli(), 10)
	b = append(b, `,"command":`...)
	b = append(b, obj...)
	return append(b, '}')
}

// ingestCommand applies a peer's change of a command. A message that can
// never be applied here (malformed, another device's command, an id that
// is not a peer's) is acknowledged without being stored.
func (c *Cluster) ingestCommand(pt peerTopic, m *peerMessage, done func(bridge.Result)) error {
	if c.links.Commands == nil {
		c.met.Skipped.WithLabelValues("invalid").Inc()
		done(bridge.Result{})
		return nil
	}
	cmd, err := commands.DecodePeer(pt.device, m.Command)
	if err != nil {
		return err
	}
	stored := c.stored(kindCommand, m.Committed, done)
	return c.links.Commands.ApplyPeer(cmd, func(err error) {
		if refusedCommand(err) {
			c.log.Error("peer command change refused: acknowledged, not stored", "command", cmd.ID, "err", err)
			c.met.Skipped.WithLabelValues("invalid").Inc()
			done(bridge.Result{})
			return
		}
		stored(bridge.Result{Err: err})
	})
}

// refusedCommand reports whether err is the store's refusal of a command
// change by its rules: the message can never be applied.
func refusedCommand(err error) bool {
	return errors.Is(err, storage.ErrCommandNotFound) || errors.Is(err, storage.ErrCommandDevice) ||
		errors.Is(err, storage.ErrCommandState)
}
