package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/topic"
)

// What Recover does with the buckets of commands (commands.go,
// commands_peer.go):
//   - commands: the command records, the one account of each command.
//     Every record is decoded and checked; one that fails is skipped and
//     listed. Salvage takes the records it finds on pages the file no
//     longer leads to; a record changes under its seq as its command moves
//     on, so of several copies it keeps the one furthest along, which may
//     be behind the lost one.
//   - the log: each change of a command is a commands/{device} event
//     carrying the command as it became. A command whose record lies in a
//     lost part (or was skipped) is made again from its last event, when
//     its seq is known (this hub's ids carry it; a peer's command has it in
//     command_peers); a record behind its last event is brought up to it.
//   - command_index, command_pending and command_peers hold nothing the
//     records do not: they are checked against the records, entries of
//     commands not held are dropped, missing ones added.
//   - the sequence of the commands bucket, from which new commands are
//     numbered, is raised to the highest seq named anywhere in the file
//     (records, index keys, peer entries, this hub's ids in the log), so
//     that a new command never takes the id of one a watcher has seen.

// maxCommandID bounds the length of a command id: a peer hub's id is its
// store identity, a dash and 16 hex digits.
const maxCommandID = 64

// checkCommand decodes and checks a key and value of the commands bucket.
func checkCommand(k, v []byte) (bridge.Command, error) {
	var c bridge.Command
	if len(k) != 8 || getID(k) == 0 {
		return c, fmt.Errorf("%w: key is not a command seq", ErrCorrupt)
	}
	if err := json.Unmarshal(v, &c); err != nil {
		return c, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return c, checkCommandFields(&c, getID(k))
}

// checkCommandFields checks the members of command c, stored under seq.
func checkCommandFields(c *bridge.Command, seq uint64) error {
	bareSeq, bare := commandSeq(c.ID)
	switch {
	case c.ID == "" || len(c.ID) > maxCommandID || strings.ContainsAny(c.ID, "/+#\x00"):
		return fmt.Errorf("%w: id %q is not a command id", ErrCorrupt, c.ID)
	case bare && bareSeq != seq:
		return fmt.Errorf("%w: id %q is not the command of seq %d", ErrCorrupt, c.ID, seq)
	case topic.ValidDeviceID(c.Device) != nil:
		return fmt.Errorf("%w: device %q is not a device id", ErrCorrupt, c.Device)
	case topic.ValidMetric(c.Name) != nil:
		return fmt.Errorf("%w: name %q is not a command name", ErrCorrupt, c.Name)
	case !c.State.Valid():
		return fmt.Errorf("%w: state %q", ErrCorrupt, c.State)
	case c.Status != "" && c.Status != bridge.StatusOK && c.Status != bridge.StatusError:
		return fmt.Errorf("%w: status %q", ErrCorrupt, c.Status)
	case len(c.Params) > 0 && c.Params[0] != '{':
		return fmt.Errorf("%w: params are not a JSON object", ErrCorrupt)
	}
	return nil
}

// checkCommandKey checks a key and value of command_index or
// command_pending: a device id, a zero byte and a seq; no value.
func checkCommandKey(k, v []byte) error {
	switch {
	case len(k) < 10 || k[len(k)-9] != 0 || topic.ValidDeviceID(string(k[:len(k)-9])) != nil || getID(k[len(k)-8:]) == 0:
		return fmt.Errorf("%w: key is not a device id and a command seq", ErrCorrupt)
	case len(v) != 0:
		return fmt.Errorf("%w: value of %d bytes", ErrCorrupt, len(v))
	}
	return nil
}

// checkCommandPeer checks a key and value of command_peers: a peer hub's
// command id and a seq.
func checkCommandPeer(k, v []byte) error {
	_, bare := commandSeq(string(k))
	switch {
	case len(k) == 0 || len(k) > maxCommandID || bare || bytes.ContainsAny(k, "/+#\x00"):
		return fmt.Errorf("%w: key is not a peer hub's command id", ErrCorrupt)
	case len(v) != 8 || getID(v) == 0:
		return fmt.Errorf("%w: seq of %d bytes", ErrCorrupt, len(v))
	}
	return nil
}

// commandKeyName names a command_index or command_pending key as
// "device"/seq.
func commandKeyName(k []byte) string {
	if len(k) < 9 || k[len(k)-9] != 0 {
		return quoteKey(k)
	}
	return fmt.Sprintf("%q/%d", k[:len(k)-9], getID(k[len(k)-8:]))
}

// heldCommands describes a damaged part of a command bucket b, "" when b
// is not one.
func heldCommands(b string, from, to []byte) string {
	switch b {
	case string(bucketCommands):
		return "commands numbered " + idBounds(from, to)
	case string(bucketCommandIndex):
		return "the index of commands by device " + keyBounds(from, to, commandKeyName)
	case string(bucketCommandPending):
		return "the list of pending commands " + keyBounds(from, to, commandKeyName)
	case string(bucketCommandPeers):
		return "the ids of peer hubs' commands " + keyBounds(from, to, quoteKey)
	}
	return ""
}

// isCommandBucket reports whether name is one of the buckets of commands.
func isCommandBucket(name []byte) bool {
	for _, b := range [][]byte{bucketCommands, bucketCommandIndex, bucketCommandPending, bucketCommandPeers} {
		if bytes.Equal(name, b) {
			return true
		}
	}
	return false
}

// laterCommand reports whether c is a later copy of the command old:
// further along (states never go back), answered where old was not, or
// changed later.
func laterCommand(old, c *bridge.Command) bool {
	switch {
	case old.State != c.State:
		return bridge.CanMove(old.State, c.State)
	case old.Status == "" && c.Status != "":
		return true
	case old.Status != "" && c.Status == "":
		return false
	}
	return c.Updated.After(old.Updated)
}

func isCommand(k, v []byte) bool {
	_, err := checkCommand(k, v)
	return err == nil
}

// isCommandPeer reports whether a key and value found outside the tree
// look like a peer command id as hubs make them (a store identity, a dash
// and 16 hex digits) and its seq.
func isCommandPeer(k, v []byte) bool {
	if checkCommandPeer(k, v) != nil || len(k) != 29 || k[12] != '-' || !validIdentity(k[:12]) {
		return false
	}
	_, ok := commandSeq(string(k[13:]))
	return ok
}

// command copies one command record found outside the tree: a record the
// walk copied stays; of the copies found here the one furthest along is
// kept, and copies of two different commands under one seq are both
// dropped.
func (sv *salvager) command(b *bolt.Bucket, k, v []byte) error {
	seq := getID(k)
	ours, seen := sv.cmdFound[seq]
	have := b.Get(k)
	switch {
	case !seen && have == nil:
		sv.cmdFound[seq] = true
		sv.nCommands++
		return b.Put(k, bytes.Clone(v))
	case !ours:
		return nil // the walk's record, or dropped
	}
	found, _ := checkCommand(k, v) // isCommand checked both
	old, _ := checkCommand(k, have)
	if found.ID != old.ID || found.Device != old.Device {
		sv.cmdFound[seq] = false
		sv.nCommands--
		sv.conflicts++
		return b.Delete(k)
	}
	if !laterCommand(&old, &found) {
		return nil
	}
	return b.Put(k, bytes.Clone(v))
}

// commandPeer copies one peer command id the walk lost: it gives the seq
// of a lost replica made again from the log. The highest seq of an id is
// kept (a peer's command pruned here and sent again is stored anew).
func (sv *salvager) commandPeer(b *bolt.Bucket, k, v []byte) error {
	if have := b.Get(k); have != nil && getID(have) >= getID(v) {
		return nil
	}
	return b.Put(k, bytes.Clone(v))
}

// putSeq returns the key of the command of seq.
func putSeq(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }
