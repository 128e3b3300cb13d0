package storage

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/telehub/telehub/bridge"
)

// Commands in a cluster. Each hub numbers the commands it creates itself;
// in a cluster their ids are "<store identity>-<16 hex digits>" so that the
// ids of all hubs are distinct, and every hub keeps a replica of the
// commands of its peers under their own ids (applyReplica). A single hub's
// ids are the 16 hex digits alone, as before it joined a cluster; those
// stay this hub's own and are never taken for a peer's.

// bucketCommandPeers: id of a command a peer hub created -> the seq (8
// bytes big-endian) this store keeps its replica under in bucketCommands.
var bucketCommandPeers = []byte("command_peers")

// commandPrefix returns the start of this store's command ids.
func (s *Store) commandPrefix() string {
	if !s.cfg.Cluster {
		return ""
	}
	return s.ids.Identity() + "-"
}

// seq returns the seq under which this store keeps command id; false when
// it holds none.
func (b commandBuckets) seq(id string) (uint64, bool) {
	if seq, ok := commandSeq(id); ok {
		return seq, true // a single hub's id: always this store's own
	}
	if b.prefix != "" {
		if hex, own := strings.CutPrefix(id, b.prefix); own {
			return commandSeq(hex)
		}
	}
	if b.peers == nil {
		return 0, false
	}
	v := b.peers.Get([]byte(id))
	if len(v) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(v), true
}

// applyReplica applies a peer hub's copy of a command: a new command is
// stored as it is, a known one only moves forward (see
// bridge.CommandOp.Replica).
func applyReplica(b commandBuckets, device string, op *bridge.CommandOp) error {
	r := op.Replica
	switch {
	case r.Device != device:
		return refuse("command %q is of device %q, not %q: %w", r.ID, r.Device, device, ErrCommandDevice)
	case !r.State.Valid():
		return refuse("command %q: state %q: %w", r.ID, r.State, ErrCommandState)
	}
	seq, ok := b.seq(r.ID)
	if !ok {
		return storeReplica(b, op)
	}
	c, err := getCommand(b.cmds, seq)
	if err != nil {
		return err
	}
	if c == nil {
		return storeReplica(b, op)
	}
	if c.Device != r.Device {
		return refuse("command %q: %w", r.ID, ErrCommandDevice)
	}
	op.Out = *c
	return advanceReplica(b, seq, c, op)
}

// advanceReplica moves the stored command c of seq to the replica's state
// when that is forward, and records the replica's answer when c has none.
func advanceReplica(b commandBuckets, seq uint64, c *bridge.Command, op *bridge.CommandOp) error {
	r := op.Replica
	answered := r.Status != "" && c.Status == ""
	moved := bridge.CanMove(c.State, r.State)
	if !moved && !answered {
		return nil // stale or repeated: nothing to do
	}
	if moved {
		c.State = r.State
	}
	if answered {
		c.Status, c.Result, c.Message = r.Status, r.Result, r.Message
	}
	if r.Updated.After(c.Updated) {
		c.Updated = r.Updated
	}
	if err := putCommand(b.cmds, seq, c); err != nil {
		return err
	}
	if c.State.Final() {
		if err := b.pending.Delete(deviceKey(c.Device, seq)); err != nil {
			return fmt.Errorf("pending command: %w", err)
		}
	}
	op.Out, op.Changed = *c, moved
	return nil
}

// storeReplica stores a peer's command this store does not hold yet under
// a new seq. A command id of a single hub, or one this store would mint
// itself, cannot be told apart from this store's own and is refused.
func storeReplica(b commandBuckets, op *bridge.CommandOp) error {
	r := *op.Replica
	if _, bare := commandSeq(r.ID); bare || b.prefix != "" && strings.HasPrefix(r.ID, b.prefix) || b.peers == nil {
		return refuse("command %q: not a peer hub's id: %w", r.ID, ErrCommandNotFound)
	}
	seq, err := b.cmds.NextSequence()
	if err != nil {
		return fmt.Errorf("command sequence: %w", err)
	}
	if err := b.peers.Put([]byte(r.ID), binary.BigEndian.AppendUint64(nil, seq)); err != nil {
		return fmt.Errorf("peer command %s: %w", r.ID, err)
	}
	if err := putCommand(b.cmds, seq, &r); err != nil {
		return err
	}
	k := deviceKey(r.Device, seq)
	if err := b.index.Put(k, nil); err != nil {
		return fmt.Errorf("command index: %w", err)
	}
	if !r.State.Final() {
		if err := b.pending.Put(k, nil); err != nil {
			return fmt.Errorf("pending command: %w", err)
		}
	}
	op.Out, op.Changed = r, true
	return nil
}

// forwardCommand keeps, in a cluster, the message of a change of a command
// that this hub made in the outbox, under the id of the change's event.
func (s *Store) forwardCommand(b buckets, id uint64, op *bridge.CommandOp, at time.Time) error {
	if s.cfg.ForwardCommand == nil || op.Replica != nil {
		return nil
	}
	return s.w.putOutbox(b.tx, id, s.w.txMs, at.UnixMilli(), s.cfg.ForwardCommand(&op.Out))
}
