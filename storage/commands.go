package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/topic"
)

// Errors of command changes, reported in the Write's Result.
var (
	// ErrCommandNotFound: no command with that id is stored.
	ErrCommandNotFound = errors.New("command not found")
	// ErrCommandDevice: the command belongs to another device.
	ErrCommandDevice = errors.New("command of another device")
	// ErrCommandState: the command's state does not allow the change
	// (states never go back).
	ErrCommandState = errors.New("command state does not allow the change")
	// ErrTooManyCommands: the device has MaxPending commands not yet in a
	// final state.
	ErrTooManyCommands = errors.New("too many pending commands")
)

// Buckets of commands.
var (
	// bucketCommands: command seq (8 bytes big-endian) -> the command's
	// JSON object (bridge.Command).
	bucketCommands = []byte("commands")
	// bucketCommandIndex: device, 0x00, seq -> empty: every command of a
	// device, in creation order.
	bucketCommandIndex = []byte("command_index")
	// bucketCommandPending: device, 0x00, seq -> empty: the commands of a
	// device not yet in a final state.
	bucketCommandPending = []byte("command_pending")
)

// commandBuckets are the buckets a command change writes to, and how
// this store names its commands.
type commandBuckets struct {
	cmds, index, pending, peers *bolt.Bucket
	// prefix starts the ids of this store's commands: "" for a single hub,
	// "<store identity>-" in a cluster (see commands_peer.go).
	prefix string
}

func (s *Store) openCommandBuckets(tx *bolt.Tx) commandBuckets {
	return commandBuckets{
		cmds:    tx.Bucket(bucketCommands),
		index:   tx.Bucket(bucketCommandIndex),
		pending: tx.Bucket(bucketCommandPending),
		peers:   tx.Bucket(bucketCommandPeers),
		prefix:  s.commandPrefix(),
	}
}

// commandID returns the id of the command of seq: 16 hex digits.
func commandID(seq uint64) string {
	s := strconv.FormatUint(seq, 16)
	return "0000000000000000"[len(s):] + s
}

// commandSeq returns the seq of a command id, false when id is not one.
func commandSeq(id string) (uint64, bool) {
	if len(id) != 16 {
		return 0, false
	}
	seq, err := strconv.ParseUint(id, 16, 64)
	return seq, err == nil && seq > 0
}

// deviceKey returns device, 0x00, seq.
func deviceKey(device string, seq uint64) []byte {
	k := make([]byte, 0, len(device)+9)
	k = append(append(k, device...), 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// applyCommand applies the command op of wr and appends its event when
// the state changed. A refused op fails only its write.
func (s *Store) applyCommand(b buckets, wr *bridge.Write) (bridge.Result, error) {
	op := wr.Command
	at := op.At
	if at.IsZero() {
		at = s.cfg.Now()
	}
	at = at.UTC().Truncate(time.Millisecond)
	var err error
	switch {
	case op.Create != nil:
		err = createCommand(b.commands, wr.Device, op, at)
	case op.Replica != nil:
		err = applyReplica(b.commands, wr.Device, op)
	default:
		err = changeCommand(b.commands, wr.Device, op, at)
	}
	if err != nil {
		var refused *commandRefusal
		if errors.As(err, &refused) {
			return bridge.Result{Err: refused.err}, nil
		}
		return bridge.Result{}, err
	}
	if !op.Changed {
		return bridge.Result{}, nil
	}
	tp := topic.Commands(op.Out.Device)
	ev := bridge.Event{Kind: bridge.KindCommand, Topic: tp, Device: op.Out.Device,
		Data: bridge.EncodeCommandEvent(tp, &op.Out)}
	res := bridge.Result{FirstID: s.w.nextID}
	rec := bridge.Write{Device: op.Out.Device, Events: []bridge.Event{ev}}
	if err := s.w.putRecord(b, &deviceRec{}, &rec, at.UnixMilli()); err != nil {
		return bridge.Result{}, err
	}
	if err := s.forwardCommand(b, res.FirstID, op, at); err != nil {
		return bridge.Result{}, err
	}
	return res, nil
}

// commandRefusal is an op refused by the rules: the write fails, the
// transaction goes on.
type commandRefusal struct{ err error }

func (r *commandRefusal) Error() string { return r.err.Error() }

func refuse(format string, args ...any) error {
	return &commandRefusal{err: fmt.Errorf(format, args...)}
}

// createCommand stores op.Create as a new queued command of device.
func createCommand(b commandBuckets, device string, op *bridge.CommandOp, at time.Time) error {
	if op.MaxPending > 0 && countPrefix(b.pending, device, op.MaxPending) >= op.MaxPending {
		return refuse("device %s has %d pending commands: %w", device, op.MaxPending, ErrTooManyCommands)
	}
	seq, err := b.cmds.NextSequence()
	if err != nil {
		return fmt.Errorf("command sequence: %w", err)
	}
	c := *op.Create
	c.ID, c.Device, c.State = b.prefix+commandID(seq), device, bridge.CommandQueued
	c.Created, c.Updated = at, at
	c.Expires = c.Expires.UTC().Truncate(time.Millisecond)
	if err := putCommand(b.cmds, seq, &c); err != nil {
		return err
	}
	k := deviceKey(device, seq)
	if err := b.index.Put(k, nil); err != nil {
		return fmt.Errorf("command index: %w", err)
	}
	if err := b.pending.Put(k, nil); err != nil {
		return fmt.Errorf("pending command: %w", err)
	}
	op.Out, op.Changed = c, true
	return nil
}

// changeCommand applies a state change (and result) to a stored command.
func changeCommand(b commandBuckets, device string, op *bridge.CommandOp, at time.Time) error {
	seq, ok := b.seq(op.ID)
	if !ok {
		return refuse("command %q: %w", op.ID, ErrCommandNotFound)
	}
	c, err := getCommand(b.cmds, seq)
	if err != nil {
		return err
	}
	switch {
	case c == nil:
		return refuse("command %q: %w", op.ID, ErrCommandNotFound)
	case !op.AnyDevice && c.Device != device:
		return refuse("command %q: %w", op.ID, ErrCommandDevice)
	}
	op.Out = *c
	if !bridge.CanMove(c.State, op.To) {
		if op.HasResult && c.State == bridge.CommandExpired && c.Status == "" {
			setResult(c, op, at)
			op.Out = *c
			return putCommand(b.cmds, seq, c) // recorded; the state stays expired
		}
		return refuse("command %s is %s, it cannot become %s: %w", op.ID, c.State, op.To, ErrCommandState)
	}
	c.State, c.Updated = op.To, at
	if op.HasResult {
		setResult(c, op, at)
	}
	if err := putCommand(b.cmds, seq, c); err != nil {
		return err
	}
	if c.State.Final() {
		if err := b.pending.Delete(deviceKey(c.Device, seq)); err != nil {
			return fmt.Errorf("pending command: %w", err)
		}
	}
	op.Out, op.Changed = *c, true
	return nil
}

func setResult(c *bridge.Command, op *bridge.CommandOp, at time.Time) {
	c.Status, c.Result, c.Message, c.Updated = op.Status, op.Result, op.Message, at
}

// putCommand stores c under seq.
func putCommand(cmds *bolt.Bucket, seq uint64, c *bridge.Command) error {
	v, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode command %s: %w", c.ID, err)
	}
	if err := cmds.Put(binary.BigEndian.AppendUint64(nil, seq), v); err != nil {
		return fmt.Errorf("command %s: %w", c.ID, err)
	}
	return nil
}

// getCommand reads the command of seq; nil when there is none.
func getCommand(cmds *bolt.Bucket, seq uint64) (*bridge.Command, error) {
	v := cmds.Get(binary.BigEndian.AppendUint64(nil, seq))
	if v == nil {
		return nil, nil
	}
	c := new(bridge.Command)
	if err := json.Unmarshal(v, c); err != nil {
		return nil, fmt.Errorf("%w: command %s: %w", ErrCorrupt, commandID(seq), err)
	}
	return c, nil
}

// countPrefix counts the keys of device in bucket, stopping at limit.
func countPrefix(bucket *bolt.Bucket, device string, limit int) int {
	prefix := append([]byte(device), 0)
	n := 0
	c := bucket.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && n < limit; k, _ = c.Next() {
		n++
	}
	return n
}

// Command returns the command id; ErrCommandNotFound when there is none.
func (s *Store) Command(id string) (bridge.Command, error) {
	var out bridge.Command
	err := s.db.View(func(tx *bolt.Tx) error {
		b := s.openCommandBuckets(tx)
		seq, ok := b.seq(id)
		if !ok {
			return ErrCommandNotFound
		}
		c, err := getCommand(b.cmds, seq)
		if err != nil {
			return err
		}
		if c == nil {
			return ErrCommandNotFound
		}
		out = *c
		return nil
	})
	if errors.Is(err, ErrCommandNotFound) {
		return out, err
	}
	if err != nil {
		return out, viewErr("read command", err)
	}
	return out, nil
}

// DeviceCommands returns the commands of device, newest first, at most
// limit of them (limit > 0), only those in state when state is not "".
func (s *Store) DeviceCommands(device string, state bridge.CommandState, limit int) ([]bridge.Command, error) {
	var out []bridge.Command
	err := s.db.View(func(tx *bolt.Tx) error {
		b := s.openCommandBuckets(tx)
		bucket := b.index
		if state != "" && !state.Final() {
			bucket = b.pending // pending holds every non-final command
		}
		prefix := append([]byte(device), 0)
		end := append([]byte(device), 1)
		c := bucket.Cursor()
		k, _ := c.Seek(end)
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, _ = c.Prev() {
			cmd, err := getCommand(b.cmds, binary.BigEndian.Uint64(k[len(prefix):]))
			if err != nil {
				return err
			}
			if cmd != nil && (state == "" || cmd.State == state) {
				out = append(out, *cmd)
			}
		}
		return nil
	})
	if err != nil {
		return nil, viewErr("list commands", err)
	}
	return out, nil
}

// PendingCommands returns every command not yet in a final state, in
// creation order.
func (s *Store) PendingCommands() ([]bridge.Command, error) {
	var out []bridge.Command
	err := s.db.View(func(tx *bolt.Tx) error {
		b := s.openCommandBuckets(tx)
		var seqs []uint64
		err := b.pending.ForEach(func(k, _ []byte) error {
			if len(k) < 9 {
				return fmt.Errorf("%w: pending command key of %d bytes", ErrCorrupt, len(k))
			}
			seqs = append(seqs, binary.BigEndian.Uint64(k[len(k)-8:]))
			return nil
		})
		if err != nil {
			return err
		}
		slices.Sort(seqs)
		for _, seq := range seqs {
			cmd, err := getCommand(b.cmds, seq)
			if err != nil {
				return err
			}
			if cmd != nil {
				out = append(out, *cmd)
			}
		}
		return nil
	})
	if err != nil {
		return nil, viewErr("read pending commands", err)
	}
	return out, nil
}
