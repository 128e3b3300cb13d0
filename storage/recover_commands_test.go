package storage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/telehub/telehub/bridge"
)

// commandFixture is a closed data file of a hub in a cluster holding
// commands of its own in every state and replicas of a peer hub's.
type commandFixture struct {
	cfg  Config
	cmds map[string]bridge.Command // by id, as stored last
	seqs map[string]uint64         // by id, the seq the store keeps it under
}

// Sizes of the command fixture: enough commands of about 400 bytes for
// several leaf pages, so that the root of the commands bucket is a branch
// page.
const (
	fixtureCommands = 300
	fixtureReplicas = 40
	fixtureCmdDevs  = 30
)

// commandFile writes fixtureCommands commands of the hub over
// fixtureCmdDevs devices, moved on to every state, and fixtureReplicas
// replicas of a peer's commands, each change in a commit of its own.
func commandFile(t *testing.T) commandFixture {
	t.Helper()
	fx := commandFixture{cfg: testConfig(t), cmds: make(map[string]bridge.Command), seqs: make(map[string]uint64)}
	fx.cfg.Cluster = true
	s, err := Open(fx.cfg)
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("p", 200)
	var ids []string
	for i := range fixtureCommands {
		op := &bridge.CommandOp{Create: &bridge.Command{Name: "set", Params: fmt.Appendf(nil, `{"n":%d,"pad":%q}`, i, pad),
			Expires: t0.Add(time.Hour)}}
		if r := wait(t, submitAsync(t, s, &bridge.Write{Device: cmdDevice(i), Command: op})); r.Err != nil {
			t.Fatal(r.Err)
		}
		ids = append(ids, op.Out.ID)
	}
	for i, id := range ids {
		for _, to := range cmdPath(i) {
			if _, err := moveCmd(t, s, cmdDevice(i), id, to, to.Final() && to != bridge.CommandCanceled); err != nil {
				t.Fatalf("command %s to %s: %v", id, to, err)
			}
		}
	}
	for j := range fixtureReplicas {
		c := peerCmd(bridge.CommandQueued)
		c.ID, c.Device = fmt.Sprintf("0123456789ab-%016x", j+1), cmdDevice(j)
		if _, err := replicate(t, s, c); err != nil {
			t.Fatal(err)
		}
		if j%2 == 1 {
			c.State, c.Status, c.Result, c.Updated = bridge.CommandSucceeded, bridge.StatusOK, json.RawMessage(`{"j":1}`), t0.Add(time.Second)
			if _, err := replicate(t, s, c); err != nil {
				t.Fatal(err)
			}
		}
		ids = append(ids, c.ID)
	}
	for _, id := range ids {
		if fx.cmds[id], err = s.Command(id); err != nil {
			t.Fatal(err)
		}
	}
	fx.readSeqs(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return fx
}

func cmdDevice(i int) string { return fmt.Sprintf("cd-%02d", i%fixtureCmdDevs) }

// cmdPath is the states command i of the fixture moves through.
func cmdPath(i int) []bridge.CommandState {
	switch i % 6 {
	case 1:
		return []bridge.CommandState{bridge.CommandSent}
	case 2:
		return []bridge.CommandState{bridge.CommandSent, bridge.CommandDelivered}
	case 3:
		return []bridge.CommandState{bridge.CommandSent, bridge.CommandDelivered, bridge.CommandSucceeded}
	case 4:
		return []bridge.CommandState{bridge.CommandCanceled}
	case 5:
		return []bridge.CommandState{bridge.CommandSent, bridge.CommandFailed}
	}
	return nil // stays queued
}

// readSeqs notes the seq of every command of s.
func (fx *commandFixture) readSeqs(t *testing.T, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCommands).ForEach(func(k, v []byte) error {
			var c bridge.Command
			if err := json.Unmarshal(v, &c); err != nil {
				return err
			}
			fx.seqs[c.ID] = getID(k)
			return nil
		})
	})
	if err != nil || len(fx.seqs) != len(fx.cmds) {
		t.Fatalf("seqs of %d of %d commands: %v", len(fx.seqs), len(fx.cmds), err)
	}
}

// pending returns the commands of fx not yet final.
func (fx commandFixture) pending() int {
	n := 0
	for _, c := range fx.cmds {
		if !c.State.Final() {
			n++
		}
	}
	return n
}

// copyOf copies fx's file into a new directory and returns fx on it.
func (fx commandFixture) copyOf(t *testing.T) commandFixture {
	t.Helper()
	cp := clusterFixture{cfg: fx.cfg}.copyOf(t)
	fx.cfg = cp.cfg
	return fx
}

// recoverCommands recovers fx's file, checks the new one, and returns the
// report and the new file opened as a store.
func recoverCommands(t *testing.T, fx commandFixture) (RecoverReport, *Store) {
	t.Helper()
	rep, cfg := recoverChecked(t, fx.cfg)
	t.Logf("recovered %d commands (%d pending), %d keys fixed; salvaged %+v; damage %v; undecodable %q",
		rep.Commands, rep.PendingCommands, rep.CommandKeysFixed, rep.Salvaged, rep.Damage, rep.Undecodable)
	return rep, openStore(t, cfg)
}

// sameCommands fails unless s holds every command of fx as it was stored
// last, its device's list and its pending list agreeing.
func sameCommands(t *testing.T, s *Store, fx commandFixture) {
	t.Helper()
	perDevice := make(map[string]int)
	var pending []string
	for id, want := range fx.cmds {
		got, err := s.Command(id)
		if err != nil {
			t.Fatalf("command %s after recovery: %v", id, err)
		}
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if !bytes.Equal(g, w) {
			t.Fatalf("command %s after recovery:\n%s\nwant\n%s", id, g, w)
		}
		perDevice[want.Device]++
		if !want.State.Final() {
			pending = append(pending, id)
		}
	}
	for device, n := range perDevice {
		if got, err := s.DeviceCommands(device, "", 1000); err != nil || len(got) != n {
			t.Fatalf("commands of %s after recovery: %d, %v; want %d", device, len(got), err, n)
		}
	}
	got, err := s.PendingCommands()
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(pending, func(a, b string) int { return int(fx.seqs[a]) - int(fx.seqs[b]) })
	gotIDs := make([]string, len(got))
	for i, c := range got {
		gotIDs[i] = c.ID
	}
	if i := firstDiff(gotIDs, pending); i >= 0 {
		t.Fatalf("pending commands after recovery: %d, want %d; the first differing is number %d", len(gotIDs), len(pending), i)
	}
}

// newCommandIsNew creates a command in s and fails unless its id is one
// fx never held and every command of fx is still there.
func newCommandIsNew(t *testing.T, s *Store, fx commandFixture) {
	t.Helper()
	c, err := createCmd(t, s, "cd-new", "after", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, seen := fx.cmds[c.ID]; seen {
		t.Fatalf("a command created after recovery took the id %s of a recovered one", c.ID)
	}
	if _, err := moveCmd(t, s, "cd-new", c.ID, bridge.CommandCanceled, false); err != nil {
		t.Fatal(err) // no longer pending: the lists below are fx's
	}
	sameCommands(t, s, fx)
}

// Recover carries every command as it was, the hub's own and the peer's
// replicas, with the pending list and the index; a new command gets a new
// id and replaces none.
func TestRecoverCarriesCommands(t *testing.T) {
	fx := commandFile(t)
	rep, s := recoverCommands(t, fx)
	if rep.Commands != len(fx.cmds) || rep.PendingCommands != fx.pending() || rep.CommandKeysFixed != 0 ||
		rep.DamageCount != 0 || len(rep.Undecodable) != 0 || rep.Other != 3 {
		t.Fatalf("report %+v, want %d commands (%d pending) and the 3 meta keys as other keys", rep, len(fx.cmds), fx.pending())
	}
	sameCommands(t, s, fx)
	newCommandIsNew(t, s, fx)
}

// When the root page of a command bucket, or of the whole file, is
// damaged, the walk loses it and the report names it; salvage finds the
// records on their pages, the index and pending list are built again from
// them, and a new command still gets a new id.
func TestRecoverSalvagesCommands(t *testing.T) {
	sound := commandFile(t)
	for _, tc := range []struct {
		bucket []byte
		held   string
	}{
		{bucketCommands, "commands numbered the first..the last"},
		{bucketCommandIndex, "the index of commands by device"},
		{nil, "the list of buckets"},
	} {
		t.Run(string(tc.bucket), func(t *testing.T) {
			fx := sound.copyOf(t)
			root := fileRoot(t, fx.cfg.Path)
			if tc.bucket != nil {
				root = bucketRoot(t, fx.cfg.Path, tc.bucket)
			}
			overwrite(t, fx.cfg.Path, root, damages["zeros"])
			openErr(t, fx.cfg)
			rep, s := recoverCommands(t, fx)
			if rep.DamageCount != 1 || rep.Damage[0].Page != root || !strings.Contains(rep.Damage[0].String(), tc.held) {
				t.Fatalf("damage %v (%d), want page %d holding %s", rep.Damage, rep.DamageCount, root, tc.held)
			}
			if rep.Commands != len(fx.cmds) || rep.PendingCommands != fx.pending() {
				t.Fatalf("report %+v, want %d commands (%d pending)", rep, len(fx.cmds), fx.pending())
			}
			switch string(tc.bucket) {
			case string(bucketCommands):
				if rep.Salvaged.Commands != len(fx.cmds) || rep.CommandKeysFixed != 0 {
					t.Fatalf("salvaged %+v, %d keys fixed; want every command found again, no key fixed", rep.Salvaged, rep.CommandKeysFixed)
				}
			case string(bucketCommandIndex):
				if rep.CommandKeysFixed != len(fx.cmds) {
					t.Fatalf("%d keys fixed, want the %d of the lost index added", rep.CommandKeysFixed, len(fx.cmds))
				}
			}
			sameCommands(t, s, fx)
			newCommandIsNew(t, s, fx)
		})
	}
}

// When a leaf page of the commands is lost and no copy of it is left,
// its commands are made again from their last event in the log, in their
// last state.
func TestRecoverRemakesCommandsFromTheLog(t *testing.T) {
	fx := commandFile(t).copyOf(t)
	leaf := firstLeaf(t, fx.cfg.Path, bucketCommands)
	wipeUnreached(t, fx.cfg.Path)
	overwrite(t, fx.cfg.Path, leaf, damages["random"])
	rep, s := recoverCommands(t, fx)
	if rep.DamageCount != 1 || rep.Damage[0].Page != leaf {
		t.Fatalf("damage %v (%d), want page %d", rep.Damage, rep.DamageCount, leaf)
	}
	if rep.Salvaged.CommandsFromLog == 0 || rep.Commands != len(fx.cmds) {
		t.Fatalf("report %+v: want the lost commands made again from the log, %d in all", rep, len(fx.cmds))
	}
	sameCommands(t, s, fx)
	newCommandIsNew(t, s, fx)
}

// Command records that cannot be what the store wrote are skipped, listed
// and made again from the log; entries of the index, pending list and
// peer ids that cannot be decoded are listed, and those that disagree with
// the records are dropped or added.
func TestRecoverChecksCommandBuckets(t *testing.T) {
	fx := commandFile(t).copyOf(t)
	ownID, peerID := ownIDIn(fx, bridge.CommandSent), "0123456789ab-0000000000000002"
	ownSeq, peerSeq := fx.seqs[ownID], fx.seqs[peerID]
	final := fx.cmds[ownIDIn(fx, bridge.CommandSucceeded)]
	bad := []struct {
		bucket []byte
		k, v   string
	}{
		{bucketCommands, string(putSeq(ownSeq)), `{"id":`},
		{bucketCommands, string(putSeq(peerSeq)), `{"id":"x/y","device":"cd-00"}`},
		{bucketCommands, "short", `{}`},
		{bucketCommandIndex, "no zero byte", ""},
		{bucketCommandPending, "cd-00\x00\x00\x00\x00\x00\x00\x00\x00\x05", "value"},
		{bucketCommandPeers, "0000000000000005", string(putSeq(5))},
		{bucketCommandPeers, "0123456789ab-00000000000000ff", "\x01"},
	}
	const fixed = 4 // the entries below that disagree with the records
	editFile(t, fx.cfg.Path, func(tx *bolt.Tx) error {
		for _, b := range bad {
			if err := tx.Bucket(b.bucket).Put([]byte(b.k), []byte(b.v)); err != nil {
				return err
			}
		}
		finalKey := deviceKey(final.Device, fx.seqs[final.ID])
		return errors.Join(
			tx.Bucket(bucketCommandIndex).Delete(finalKey),                                // missing: added
			tx.Bucket(bucketCommandPending).Put(finalKey, nil),                            // final: dropped
			tx.Bucket(bucketCommandPending).Put(deviceKey("cd-07", 9999), nil),            // no such command: dropped
			tx.Bucket(bucketCommandPeers).Delete([]byte("0123456789ab-0000000000000003")), // missing: added
		)
	})
	rep, s := recoverCommands(t, fx)
	if rep.Commands != len(fx.cmds) || rep.Salvaged.CommandsFromLog != 2 || rep.CommandKeysFixed != fixed ||
		len(rep.Undecodable) != len(bad) {
		t.Fatalf("report %+v: want %d commands, 2 made again from the log, %d keys fixed, %d undecodable",
			rep, len(fx.cmds), fixed, len(bad))
	}
	for _, u := range rep.Undecodable {
		if name, _, _ := strings.Cut(u, " "); !slices.Contains([]string{"commands", "command_index", "command_pending", "command_peers"}, name) {
			t.Errorf("undecodable %q does not name its bucket", u)
		}
	}
	sameCommands(t, s, fx)
	newCommandIsNew(t, s, fx)
}

// ownIDIn returns the id of the hub's own command of fx in state that it
// created first.
func ownIDIn(fx commandFixture, state bridge.CommandState) string {
	best := ""
	for id, c := range fx.cmds {
		if c.State == state && !strings.HasPrefix(id, "0123456789ab-") && (best == "" || fx.seqs[id] < fx.seqs[best]) {
			best = id
		}
	}
	return best
}

// editFile changes the closed data file at path with fn.
func editFile(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(fn)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// soundFile reads the header of the sound data file at path and walks
// it, marking the pages in use.
func soundFile(t *testing.T, path string) *boltFile {
	t.Helper()
	bf := headerOf(t, path)
	w := boltWalk{bf: bf}
	if err := w.run(); err != nil || w.damaged > 0 {
		t.Fatalf("walk of the sound file: %v, %d damaged", err, w.damaged)
	}
	return bf
}

// headerOf reads the header of the data file at path.
func headerOf(t *testing.T, path string) *boltFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	info, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	bf, err := openBoltFile(f, info.Size())
	if err != nil {
		t.Fatal(err)
	}
	return bf
}

// fileRoot returns the page of the root bucket (the list of buckets) of
// the data file at path.
func fileRoot(t *testing.T, path string) uint64 { return soundFile(t, path).meta.root }

// firstLeaf returns the page of the second leaf of bucket name, whose root
// is a branch page.
func firstLeaf(t *testing.T, path string, name []byte) uint64 {
	t.Helper()
	root := bucketRoot(t, path, name)
	p, err := headerOf(t, path).page(root, 1)
	if err != nil || p.flags != flagBranch || p.count < 3 {
		t.Fatalf("root page %d of %s: %+v, %v", root, name, p, err)
	}
	return p.child(1)
}

// wipeUnreached zeroes every page of the file at path that no bucket
// uses: no older copy of a page is left to find.
func wipeUnreached(t *testing.T, path string) {
	t.Helper()
	bf := soundFile(t, path)
	for id := uint64(2); id < bf.meta.hwm; id++ {
		if bf.seen[id/64]&(1<<(id%64)) == 0 {
			overwrite(t, path, id, damages["zeros"])
		}
	}
}

// firstDiff returns the index of the first element where a and b differ,
// -1 when they are equal.
func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// Buckets nested in the command buckets, which the store never makes and
// would read as commands or entries, are skipped and listed.
func TestRecoverCommandsWithNestedBuckets(t *testing.T) {
	fx := commandFile(t).copyOf(t)
	editFile(t, fx.cfg.Path, func(tx *bolt.Tx) error {
		for _, n := range []struct {
			bucket []byte
			name   []byte
		}{
			{bucketCommands, putSeq(fx.seqs[ownIDIn(fx, bridge.CommandQueued)] + 1000)},
			{bucketCommandIndex, []byte("x")},
			{bucketCommandIndex, deviceKey("cd-00", 7)},
			{bucketCommandPending, deviceKey("cd-01", 5000)},
			{bucketCommandPeers, []byte("0123456789ab-00000000000000aa")},
		} {
			nested, err := tx.Bucket(n.bucket).CreateBucket(n.name)
			if err != nil {
				return err
			}
			if err := nested.Put([]byte("k"), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	})
	rep, s := recoverCommands(t, fx)
	if rep.Commands != len(fx.cmds) || len(rep.Undecodable) != 5 || rep.Other != 3 {
		t.Fatalf("report %+v, want %d commands, the 5 nested buckets skipped and listed", rep, len(fx.cmds))
	}
	sameCommands(t, s, fx)
}
