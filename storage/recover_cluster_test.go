package storage

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/telehub/telehub/bridge"
)

// clusterFixture is a closed data file of a hub in a cluster: readings
// whose messages wait in the outbox, and peers' writes with their origins.
type clusterFixture struct {
	cfg     Config
	outbox  []OutboxEntry
	origins map[string]uint64 // originKey -> highest id
}

// Sizes of the cluster fixture: enough of each for several leaf pages, so
// that the root of each bucket is a branch page.
const (
	fixtureOutbox      = 400
	fixturePeerDevices = 300
)

// clusterFile writes fixtureOutbox readings with outbox messages of about
// 150 bytes, and two rounds of peer writes of fixturePeerDevices devices
// (the second with higher origin ids), each in a commit of its own.
func clusterFile(t *testing.T) clusterFixture {
	t.Helper()
	fx := clusterFixture{cfg: testConfig(t), origins: make(map[string]uint64)}
	s, err := Open(fx.cfg)
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("m", 140)
	for i := range fixtureOutbox {
		w := reading(fmt.Sprintf("ws-%02d", i%40), t0, i, "temp")
		w.Outbox = fmt.Appendf(nil, "%s-%d", pad, i)
		if r := submitSync(t, s, w); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	for round := range 2 {
		for i := range fixturePeerDevices {
			device := fmt.Sprintf("p-%03d", i)
			id := uint64(round*1000 + i + 1)
			w := reading(device, t0, i, "temp")
			w.Origin = &bridge.Origin{Node: "hub-b", ID: id, EventIDs: []string{"x"}}
			if r := submitSync(t, s, w); r.Err != nil || r.Duplicate {
				t.Fatalf("peer write %s %d: %+v", device, id, r)
			}
			fx.origins[originKey("hub-b", device)] = id
		}
	}
	if fx.outbox, err = s.Outbox(0, 10*fixtureOutbox); err != nil || len(fx.outbox) != fixtureOutbox {
		t.Fatalf("outbox of the fixture: %d messages, %v", len(fx.outbox), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return fx
}

// copyOf copies fx's file into a new directory and returns fx on it.
func (fx clusterFixture) copyOf(t *testing.T) clusterFixture {
	t.Helper()
	b, err := os.ReadFile(fx.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	fx.cfg.Path = filepath.Join(t.TempDir(), "telehub.db")
	if err := os.WriteFile(fx.cfg.Path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return fx
}

// recoverCluster recovers fx's file, checks the new one, and returns the
// report and the new file opened as a store.
func recoverCluster(t *testing.T, fx clusterFixture) (RecoverReport, *Store) {
	t.Helper()
	rep, cfg := recoverChecked(t, fx.cfg)
	t.Logf("recovered %d outbox messages, %d origins; salvaged %+v; damage %v; undecodable %q",
		rep.Outbox, rep.Origins, rep.Salvaged, rep.Damage, rep.Undecodable)
	return rep, openStore(t, cfg)
}

// outboxOf returns every message of s's outbox, failing on an error.
func outboxOf(t *testing.T, s *Store) []OutboxEntry {
	t.Helper()
	got, err := s.Outbox(0, 10*fixtureOutbox)
	if err != nil {
		t.Fatalf("Outbox of the recovered file: %v", err)
	}
	return got
}

// originsOf reads the origins bucket of the closed file at path.
func originsOf(t *testing.T, path string) map[string]uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := make(map[string]uint64)
	err = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOrigins).ForEach(func(k, v []byte) error {
			out[string(k)] = getID(v)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameOutbox fails unless got holds exactly the messages of want.
func sameOutbox(t *testing.T, got, want []OutboxEntry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("recovered outbox holds %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || !g.Committed.Equal(w.Committed) || !g.Time.Equal(w.Time) || !bytes.Equal(g.Body, w.Body) {
			t.Fatalf("recovered outbox message %d: %+v, want %+v", i, g, w)
		}
	}
}

// Recover carries a cluster hub's outbox and origins: the messages wait
// to be forwarded as before, and a peer's message sent again is still a
// duplicate.
func TestRecoverCarriesOutboxAndOrigins(t *testing.T) {
	fx := clusterFile(t)
	rep, s := recoverCluster(t, fx)
	if rep.Outbox != fixtureOutbox || rep.Origins != fixturePeerDevices || rep.DamageCount != 0 || len(rep.Undecodable) != 0 {
		t.Fatalf("report %+v, want %d outbox messages and %d origins", rep, fixtureOutbox, fixturePeerDevices)
	}
	sameOutbox(t, outboxOf(t, s), fx.outbox)
	resend := reading("p-007", t0, 1, "temp")
	resend.Origin = &bridge.Origin{Node: "hub-b", ID: 1008, EventIDs: []string{"x"}}
	if r := submitSync(t, s, resend); !r.Duplicate {
		t.Fatalf("a peer's message sent again after recovery: %+v, want a duplicate", r)
	}
	next := reading("p-007", t0, 2, "temp")
	next.Origin = &bridge.Origin{Node: "hub-b", ID: 1009, EventIDs: []string{"x"}}
	if r := submitSync(t, s, next); r.Duplicate || r.Err != nil {
		t.Fatalf("a peer's next message after recovery: %+v, want it stored", r)
	}
}

// bucketRoot returns the root page of bucket name in the file at path,
// failing unless it is a branch page (whose leaves then survive its
// damage).
func bucketRoot(t *testing.T, path string, name []byte) uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var root uint64
	err = db.View(func(tx *bolt.Tx) error {
		root = uint64(tx.Bucket(name).Root())
		info, err := tx.Page(int(root))
		if err != nil || info == nil || info.Type != "branch" {
			return fmt.Errorf("root page %d of %s: %+v, %v; want a branch page", root, name, info, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// When the root page of the outbox or origins bucket is damaged, the walk
// loses the whole bucket and reports it; salvage finds its leaf pages
// again: every message, the same bytes, and the highest origin id of
// each peer device, not an older one.
func TestRecoverSalvagesOutboxAndOrigins(t *testing.T) {
	sound := clusterFile(t)
	t.Run("outbox", func(t *testing.T) {
		fx := sound.copyOf(t)
		root := bucketRoot(t, fx.cfg.Path, bucketOutbox)
		overwrite(t, fx.cfg.Path, root, damages["zeros"])
		openErr(t, fx.cfg)
		rep, s := recoverCluster(t, fx)
		if rep.DamageCount != 1 || rep.Damage[0].Bucket != "outbox" ||
			!strings.Contains(rep.Damage[0].String(), "messages waiting to be forwarded to the peer hubs") {
			t.Fatalf("damage %v (%d), want the outbox's root page", rep.Damage, rep.DamageCount)
		}
		got := outboxOf(t, s)
		if rep.Outbox != len(got) || rep.Salvaged.Outbox != len(got) || rep.Salvaged.Conflicts != 0 {
			t.Fatalf("report %+v for %d messages in the new file", rep, len(got))
		}
		sameOutbox(t, got, sound.outbox)
	})
	t.Run("origins", func(t *testing.T) {
		fx := sound.copyOf(t)
		root := bucketRoot(t, fx.cfg.Path, bucketOrigins)
		overwrite(t, fx.cfg.Path, root, damages["random"])
		openErr(t, fx.cfg)
		to := filepath.Join(t.TempDir(), "recovered.db")
		rep, err := Recover(fx.cfg.Path, to)
		if err != nil {
			t.Fatal(err)
		}
		if rep.DamageCount != 1 || rep.Damage[0].Bucket != "origins" ||
			!strings.Contains(rep.Damage[0].String(), "origin ids of peer hubs' devices") {
			t.Fatalf("damage %v (%d), want the origins' root page", rep.Damage, rep.DamageCount)
		}
		got := originsOf(t, to)
		if rep.Origins != len(got) || rep.Salvaged.Origins != len(got) || len(got) != fixturePeerDevices {
			t.Fatalf("report %+v for %d origins in the new file, want %d", rep, len(got), fixturePeerDevices)
		}
		for k, id := range got {
			if id != fx.origins[k] {
				t.Fatalf("origin %s: %d, want the highest stored, %d", originName([]byte(k)), id, fx.origins[k])
			}
		}
	})
}

// Values of the outbox and origins buckets that cannot be what the store
// wrote are skipped and listed; the rest is copied, and the new outbox
// reads without error.
func TestRecoverSkipsUndecodableOutboxAndOrigins(t *testing.T) {
	fx := clusterFile(t).copyOf(t)
	db, err := bolt.Open(fx.cfg.Path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		bucket []byte
		k, v   string
	}{
		{bucketOutbox, "\x00\x00\x00\x00\x00\x00\x10\x00", "short"},
		{bucketOutbox, "abc", strings.Repeat("v", 32)},
		{bucketOrigins, "no zero byte", "\x00\x00\x00\x00\x00\x00\x00\x01"},
		{bucketOrigins, "hub-b\x00bad/device", "\x00\x00\x00\x00\x00\x00\x00\x01"},
		{bucketOrigins, "hub-b\x00p-999", "\x01"},
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range bad {
			if err := tx.Bucket(b.bucket).Put([]byte(b.k), []byte(b.v)); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	rep, s := recoverCluster(t, fx)
	if rep.Outbox != fixtureOutbox || rep.Origins != fixturePeerDevices || len(rep.Undecodable) != len(bad) {
		t.Fatalf("report %+v, want %d outbox messages, %d origins and %d undecodable", rep, fixtureOutbox, fixturePeerDevices, len(bad))
	}
	for _, u := range rep.Undecodable {
		if !strings.HasPrefix(u, "outbox ") && !strings.HasPrefix(u, "origins ") {
			t.Errorf("undecodable %q does not name its bucket", u)
		}
	}
	sameOutbox(t, outboxOf(t, s), fx.outbox)
}

// When the events and the id high-water mark that covered the outbox's
// last message are lost, the new file's ids still start above it: a new
// write takes neither its id nor its place in the outbox.
func TestRecoverKeepsIDsAboveTheOutbox(t *testing.T) {
	fx := clusterFile(t).copyOf(t)
	last := fx.outbox[len(fx.outbox)-1].ID
	db, err := bolt.Open(fx.cfg.Path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Delete(metaHighWater); err != nil {
			return err
		}
		events := tx.Bucket(bucketEvents)
		var lost [][]byte
		for k, _ := events.Cursor().Seek(putID(nil, last-10)); k != nil; k, _ = events.Cursor().Seek(k) {
			lost = append(lost, bytes.Clone(k))
			if err := events.Delete(k); err != nil {
				return err
			}
		}
		if len(lost) == 0 {
			return fmt.Errorf("no events from %d", last-10)
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	_, s := recoverCluster(t, fx)
	w := reading("ws-00", t0, 1, "temp")
	w.Outbox = []byte("new message")
	r := submitSync(t, s, w)
	if r.Err != nil || r.FirstID <= last {
		t.Fatalf("new write after recovery: %+v, want an id above the outbox's last, %d", r, last)
	}
	got := outboxOf(t, s)
	sameOutbox(t, got[:len(got)-1], fx.outbox)
	if n := got[len(got)-1]; n.ID != r.FirstID || string(n.Body) != "new message" {
		t.Fatalf("new message in the outbox: %+v", n)
	}
}
