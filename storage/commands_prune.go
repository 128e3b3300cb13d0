package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/telehub/telehub/bridge"
)

const (
	// commandPruneChunk is the most commands one transaction looks at
	// when it prunes finished commands.
	commandPruneChunk = 256
	// commandPruneEvery is how long pruning rests, by the store's clock,
	// once it has looked at every command old enough to go.
	commandPruneEvery = time.Minute
)

// commandPruner is where pruning of finished commands stands. It is only
// a hint: after a failed commit pruning looks again from the start.
type commandPruner struct {
	from uint64    // seq of the next command to look at; 0: the first
	due  time.Time // pruning rests until then
}

// pruneCommands deletes, in creation order, the commands in a final state
// (succeeded, failed, expired, canceled) whose last change is older than
// CommandRetention, looking at no more than budget commands. Their events
// stay in the log under the event retention. It returns how many it
// deleted. A command that cannot be decoded is skipped, not deleted.
func (s *Store) pruneCommands(tx *bolt.Tx, budget int) (int, error) {
	p := &s.w.cmdPrune
	now := s.cfg.Now()
	if now.Before(p.due) {
		return 0, nil
	}
	cutoff := now.Add(-s.cfg.CommandRetention)
	b := s.openCommandBuckets(tx)
	doomed, next := scanPrunable(b.cmds.Cursor(), p.from, cutoff, budget)
	for _, d := range doomed {
		if err := deleteCommand(b, d); err != nil {
			return 0, err
		}
	}
	p.from = next
	if next == 0 {
		p.due = now.Add(commandPruneEvery)
	}
	if len(doomed) > 0 {
		s.log.Debug("finished commands pruned", "commands", len(doomed))
	}
	return len(doomed), nil
}

// prunable is a command pruning deletes.
type prunable struct {
	seq    uint64
	device string
	id     string
}

// scanPrunable looks at up to budget commands from seq from on and
// returns those to delete, and the seq to look at next: 0 when it reached
// the end or a command created after cutoff (nothing after it can be
// older). Keys are collected first: deleting under a cursor skips keys.
func scanPrunable(c *bolt.Cursor, from uint64, cutoff time.Time, budget int) ([]prunable, uint64) {
	var out []prunable
	k, v := c.Seek(binary.BigEndian.AppendUint64(nil, from))
	for n := 0; k != nil; k, v = c.Next() {
		if n == budget {
			return out, binary.BigEndian.Uint64(k)
		}
		n++
		var cmd bridge.Command
		if json.Unmarshal(v, &cmd) != nil {
			continue
		}
		if !cmd.Created.Before(cutoff) {
			return out, 0
		}
		if cmd.State.Final() && cmd.Updated.Before(cutoff) {
			out = append(out, prunable{seq: binary.BigEndian.Uint64(k), device: cmd.Device, id: cmd.ID})
		}
	}
	return out, 0
}

// deleteCommand deletes a command and its index entries, and for the
// replica of a peer hub's command its entry among the peers' ids (this
// hub's own commands have none there).
func deleteCommand(b commandBuckets, d prunable) error {
	k := deviceKey(d.device, d.seq)
	if err := b.cmds.Delete(binary.BigEndian.AppendUint64(nil, d.seq)); err != nil {
		return fmt.Errorf("prune command %s: %w", d.id, err)
	}
	for _, bucket := range []*bolt.Bucket{b.index, b.pending} {
		if err := bucket.Delete(bytes.Clone(k)); err != nil {
			return fmt.Errorf("prune command %s: %w", d.id, err)
		}
	}
	if b.peers == nil {
		return nil
	}
	if err := b.peers.Delete([]byte(d.id)); err != nil {
		return fmt.Errorf("prune command %s: %w", d.id, err)
	}
	return nil
}

// pruneIdle prunes finished commands in a transaction of its own when
// pruning is due and no write is waiting; the writer runs it when idle.
func (s *Store) pruneIdle() {
	if s.cfg.Now().Before(s.w.cmdPrune.due) || len(s.queue) > 0 {
		return
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		_, err := s.pruneCommands(tx, commandPruneChunk)
		return err
	})
	if err != nil {
		s.w.cmdPrune = commandPruner{}
		s.log.Warn("pruning finished commands failed", "err", err)
	}
}
