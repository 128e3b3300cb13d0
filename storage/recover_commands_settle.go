package storage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/telehub/telehub/bridge"
)

// settleCommands makes the commands of the new file whole and consistent
// once the walk and salvage are done (recover_commands.go): commands made
// again or brought forward from the log, records checked against this
// store's ids, the index, pending list and peer ids matched to the
// records, the sequence raised. lost reports whether the record of a seq
// lay in a lost part of the file or was skipped.
func settleCommands(db *bolt.DB, rep *RecoverReport, lost func(seq uint64) bool) error {
	return db.Update(func(tx *bolt.Tx) error {
		st, err := newCommandSettler(tx, rep)
		if err != nil {
			return err
		}
		return st.run(lost)
	})
}

// commandSettler settles the commands of the new file in one transaction.
type commandSettler struct {
	rep                         *RecoverReport
	cmds, index, pending, peers *bolt.Bucket
	events                      *bolt.Bucket // nil when no event was recovered
	// prefix starts this store's own ids in a cluster; "" when the store
	// identity was lost.
	prefix string
	// top is the highest seq named anywhere in the file.
	top uint64
	// logged is the last state of each command in the log, by id.
	logged map[string]*bridge.Command
}

// settled is a command record of the new file.
type settled struct {
	seq uint64
	cmd bridge.Command
}

func newCommandSettler(tx *bolt.Tx, rep *RecoverReport) (*commandSettler, error) {
	st := &commandSettler{rep: rep, events: tx.Bucket(bucketEvents), logged: make(map[string]*bridge.Command)}
	for _, b := range []struct {
		dst  **bolt.Bucket
		name []byte
	}{{&st.cmds, bucketCommands}, {&st.index, bucketCommandIndex}, {&st.pending, bucketCommandPending}, {&st.peers, bucketCommandPeers}} {
		var err error
		if *b.dst, err = tx.CreateBucketIfNotExists(b.name); err != nil {
			return nil, fmt.Errorf("bucket %s: %w", b.name, err)
		}
	}
	if meta := tx.Bucket(bucketMeta); meta != nil && validIdentity(meta.Get(metaIdentity)) {
		st.prefix = string(meta.Get(metaIdentity)) + "-"
	}
	return st, nil
}

func (st *commandSettler) run(lost func(seq uint64) bool) error {
	st.top = st.cmds.Sequence()
	st.noteNamedSeqs()
	if err := st.readLog(); err != nil {
		return err
	}
	if err := st.remake(lost); err != nil {
		return err
	}
	held, err := st.records()
	if err != nil {
		return err
	}
	if err := st.match(held); err != nil {
		return err
	}
	for _, h := range held {
		st.top = max(st.top, h.seq)
		st.rep.Commands++
		if !h.cmd.State.Final() {
			st.rep.PendingCommands++
		}
	}
	return st.cmds.SetSequence(st.top)
}

// ownSeq returns the seq of one of this store's command ids; false for a
// peer hub's id (or this store's when its identity was lost).
func (st *commandSettler) ownSeq(id string) (uint64, bool) {
	if seq, ok := commandSeq(id); ok {
		return seq, true
	}
	if hex, own := strings.CutPrefix(id, st.prefix); own && st.prefix != "" {
		return commandSeq(hex)
	}
	return 0, false
}

// noteNamedSeqs raises top to the seqs the damaged file's index, pending
// list and peer ids named.
func (st *commandSettler) noteNamedSeqs() {
	for _, b := range []*bolt.Bucket{st.index, st.pending} {
		_ = b.ForEach(func(k, v []byte) error {
			if checkCommandKey(k, v) == nil {
				st.top = max(st.top, getID(k[len(k)-8:]))
			}
			return nil
		})
	}
	_ = st.peers.ForEach(func(k, v []byte) error {
		if checkCommandPeer(k, v) == nil {
			st.top = max(st.top, getID(v))
		}
		return nil
	})
}

// readLog reads the last state of each command from its events in the
// log, and raises top to the seqs of this store's ids there.
func (st *commandSettler) readLog() error {
	if st.events == nil {
		return nil
	}
	var evs [][]byte
	return st.events.ForEach(func(_, v []byte) error {
		var err error
		if evs, err = decodeRecord(evs[:0], v); err != nil {
			return nil // the walk checked every record it copied
		}
		for _, ev := range evs {
			f, err := decodeEvent(ev)
			if err != nil || f.kind != bridge.KindCommand {
				continue
			}
			c := new(bridge.Command)
			if json.Unmarshal(f.data, c) != nil || c.ID == "" {
				continue
			}
			st.logged[c.ID] = c
			if seq, own := st.ownSeq(c.ID); own {
				st.top = max(st.top, seq)
			}
		}
		return nil
	})
}

// remake stores again, from its last event, each command of the log whose
// record was lost and whose seq is known.
func (st *commandSettler) remake(lost func(seq uint64) bool) error {
	ids := make([]string, 0, len(st.logged))
	for id := range st.logged {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		c := st.logged[id]
		seq, own := st.ownSeq(id)
		if v := st.peers.Get([]byte(id)); !own && len(v) == 8 {
			seq = getID(v)
		}
		if seq == 0 || !lost(seq) || st.cmds.Get(putSeq(seq)) != nil || checkCommandFields(c, seq) != nil {
			continue
		}
		if err := putCommand(st.cmds, seq, c); err != nil {
			return err
		}
		st.rep.Salvaged.CommandsFromLog++
	}
	return nil
}

// records checks each command record against this store's ids, brings
// it up to its last event in the log, and keeps one record of a peer's
// command id (the later stored); it returns the records kept, in seq
// order.
func (st *commandSettler) records() ([]settled, error) {
	var all []settled
	err := st.cmds.ForEach(func(k, v []byte) error {
		c, err := checkCommand(k, v)
		if err == nil {
			all = append(all, settled{seq: getID(k), cmd: c})
		}
		return nil // the walk and salvage copied checked records only
	})
	if err != nil {
		return nil, err
	}
	held := all[:0]
	peerAt := make(map[string]int) // peer's command id -> index in held
	for _, s := range all {
		keep, err := st.record(&s)
		if err != nil {
			return nil, err
		}
		if !keep {
			continue
		}
		if _, own := st.ownSeq(s.cmd.ID); !own {
			if i, dup := peerAt[s.cmd.ID]; dup {
				if err := st.cmds.Delete(putSeq(held[i].seq)); err != nil {
					return nil, err
				}
				st.rep.Salvaged.Conflicts++
				held[i] = s
				continue
			}
			peerAt[s.cmd.ID] = len(held)
		}
		held = append(held, s)
	}
	return held, nil
}

// record checks one command record and brings it up to its last event;
// false when it is dropped.
func (st *commandSettler) record(s *settled) (bool, error) {
	if hex, own := strings.CutPrefix(s.cmd.ID, st.prefix); own && st.prefix != "" {
		if seq, ok := commandSeq(hex); !ok || seq != s.seq {
			st.rep.Undecodable = append(st.rep.Undecodable,
				fmt.Sprintf("commands %d: id %q is not the command of seq %d", s.seq, s.cmd.ID, s.seq))
			return false, st.cmds.Delete(putSeq(s.seq))
		}
	}
	last := st.logged[s.cmd.ID]
	if last == nil || last.Device != s.cmd.Device || !laterCommand(&s.cmd, last) {
		return true, nil
	}
	s.cmd = *last
	st.rep.Salvaged.CommandsFromLog++
	return true, putCommand(st.cmds, s.seq, &s.cmd)
}

// match makes the index, the pending list and the peer ids say what the
// records held say, and counts the entries dropped or added.
func (st *commandSettler) match(held []settled) error {
	index, pending, peers := make(map[string][]byte), make(map[string][]byte), make(map[string][]byte)
	for _, h := range held {
		k := string(deviceKey(h.cmd.Device, h.seq))
		index[k] = nil
		if !h.cmd.State.Final() {
			pending[k] = nil
		}
		if _, own := st.ownSeq(h.cmd.ID); !own {
			peers[h.cmd.ID] = putSeq(h.seq)
		}
	}
	for _, m := range []struct {
		b    *bolt.Bucket
		want map[string][]byte
	}{{st.index, index}, {st.pending, pending}, {st.peers, peers}} {
		n, err := matchBucket(m.b, m.want)
		if err != nil {
			return err
		}
		st.rep.CommandKeysFixed += n
	}
	return nil
}

// matchBucket makes b hold exactly the keys and values of want, and
// returns how many keys it dropped or added. It holds no nested bucket
// (the copier skips those).
func matchBucket(b *bolt.Bucket, want map[string][]byte) (int, error) {
	var drop [][]byte
	_ = b.ForEach(func(k, v []byte) error {
		if w, ok := want[string(k)]; !ok || !bytes.Equal(w, v) {
			drop = append(drop, bytes.Clone(k))
		}
		return nil
	})
	for _, k := range drop {
		if err := b.Delete(k); err != nil {
			return 0, fmt.Errorf("drop %q: %w", k, err)
		}
	}
	n := len(drop)
	for k, v := range want {
		if got, _ := b.Cursor().Seek([]byte(k)); string(got) == k { // held already, with the value wanted
			continue
		}
		if err := b.Put([]byte(k), v); err != nil {
			return 0, fmt.Errorf("add %q: %w", k, err)
		}
		n++
	}
	return n, nil
}
