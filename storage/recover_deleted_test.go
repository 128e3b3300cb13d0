package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/telehub/telehub/bridge"
)

// deletedFixture is a closed data file holding the last sessions of many
// deleted devices, and a few devices that were not deleted.
type deletedFixture struct {
	cfg      Config
	sessions map[string]uint64 // deleted device -> its last session
}

// Sizes of the deleted fixture: enough deleted devices for several leaf
// pages, so that the root of the deleted bucket is a branch page.
const (
	fixtureDeleted = 500
	fixtureLive    = 4
)

// deletedFile writes fixtureDeleted devices, each online at a session of
// its own (some above 127, which takes two bytes), and deletes them, each
// in a commit of its own; and fixtureLive devices live-N online at
// session N+1, which stay.
func deletedFile(t *testing.T) deletedFixture {
	t.Helper()
	fx := deletedFixture{cfg: testConfig(t), sessions: make(map[string]uint64)}
	s, err := Open(fx.cfg)
	if err != nil {
		t.Fatal(err)
	}
	chans := make([]<-chan bridge.Result, 0, fixtureDeleted)
	for i := range fixtureDeleted {
		device := fmt.Sprintf("gone-%03d", i)
		fx.sessions[device] = uint64(i*37%1000 + 1)
		chans = append(chans, submitAsync(t, s, online(device, fx.sessions[device])))
	}
	for i := range fixtureLive {
		submitSync(t, s, online(fmt.Sprintf("live-%d", i), uint64(i+1)))
	}
	for _, ch := range chans {
		if r := wait(t, ch); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	for device := range fx.sessions {
		if err := s.DeleteDevice(device); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return fx
}

// recoverDeleted recovers fx's file, checks the new one, and returns the
// report and the new file opened as a store.
func recoverDeleted(t *testing.T, fx deletedFixture) (RecoverReport, *Store) {
	t.Helper()
	rep, cfg := recoverChecked(t, fx.cfg)
	t.Logf("recovered %d sessions of deleted devices, %d devices; salvaged %+v; damage %v; undecodable %q",
		rep.Deleted, rep.Devices, rep.Salvaged, rep.Damage, rep.Undecodable)
	return rep, openStore(t, cfg)
}

// sameSessions fails unless s holds the last session of every deleted
// device of fx, and no record of one.
func sameSessions(t *testing.T, s *Store, fx deletedFixture) {
	t.Helper()
	for device, want := range fx.sessions {
		if got, found, err := s.DeletedSession(device); got != want || !found || err != nil {
			t.Fatalf("session of deleted device %s after recovery: %d %v %v, want %d", device, got, found, err, want)
		}
		if _, _, err := s.Device(device); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted device %s after recovery: %v, want ErrNotFound", device, err)
		}
	}
}

// Recover checks, counts and copies the sessions of deleted devices:
// entries that cannot be what the store wrote are skipped and listed, and
// a session kept for a device that has a record is moved into the record
// when it is higher, as the device's next write would.
func TestRecoverCarriesDeletedSessions(t *testing.T) {
	fx := deletedFile(t)
	bad := []struct{ k, v string }{
		{"bad/device", string(binary.AppendUvarint(nil, 3))},
		{"gone-x", "\xff"},
		{"gone-y", ""},
		{"gone-z", string(binary.AppendUvarint(nil, 3)) + "trailing"},
	}
	editFile(t, fx.cfg.Path, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeleted)
		for _, e := range bad {
			if err := b.Put([]byte(e.k), []byte(e.v)); err != nil {
				return err
			}
		}
		return errors.Join(
			b.Put([]byte("live-0"), binary.AppendUvarint(nil, 50)), // above the record's 1: moved into it
			b.Put([]byte("live-1"), binary.AppendUvarint(nil, 1)),  // below the record's 2: dropped
		)
	})
	rep, s := recoverDeleted(t, fx)
	if rep.Deleted != fixtureDeleted || rep.Devices != fixtureLive || len(rep.Undecodable) != len(bad) {
		t.Fatalf("report %+v: want %d sessions of deleted devices, %d devices, %d undecodable",
			rep, fixtureDeleted, fixtureLive, len(bad))
	}
	for _, u := range rep.Undecodable {
		if !strings.HasPrefix(u, "deleted ") {
			t.Errorf("undecodable %q does not name its bucket", u)
		}
	}
	sameSessions(t, s, fx)
	for _, e := range bad {
		if _, found, err := s.DeletedSession(e.k); found || err != nil {
			t.Errorf("undecodable session of %q copied: %v %v", e.k, found, err)
		}
	}
	for device, want := range map[string]uint64{"live-0": 50, "live-1": 2} {
		d, _, err := s.Device(device)
		if err != nil || d.Session != want {
			t.Errorf("device %s after recovery: %+v %v, want session %d", device, d, err, want)
		}
		if _, found, err := s.DeletedSession(device); found || err != nil {
			t.Errorf("session of %s kept apart beside its record: %v %v", device, found, err)
		}
	}
}

// When the root page of the deleted bucket is damaged, the walk loses it
// and the report names it; salvage finds every session again on its leaf
// pages.
func TestRecoverSalvagesDeletedSessions(t *testing.T) {
	fx := deletedFile(t)
	root := bucketRoot(t, fx.cfg.Path, bucketDeleted)
	overwrite(t, fx.cfg.Path, root, damages["zeros"])
	openErr(t, fx.cfg)
	rep, s := recoverDeleted(t, fx)
	if rep.DamageCount != 1 || rep.Damage[0].Page != root ||
		!strings.Contains(rep.Damage[0].String(), "sessions of deleted devices from the first to the last") {
		t.Fatalf("damage %v (%d), want page %d holding the sessions of deleted devices", rep.Damage, rep.DamageCount, root)
	}
	if rep.Deleted != fixtureDeleted || rep.Salvaged.Deleted != fixtureDeleted || rep.Devices != fixtureLive {
		t.Fatalf("report %+v: want all %d sessions of deleted devices found again", rep, fixtureDeleted)
	}
	sameSessions(t, s, fx)
	devs, err := s.Devices()
	if err != nil || len(devs) != fixtureLive {
		t.Fatalf("devices after recovery: %d, %v; want %d", len(devs), err, fixtureLive)
	}
	if !slices.ContainsFunc(devs, func(d Device) bool { return d.ID == "live-0" && d.Session == 1 }) {
		t.Fatalf("devices after recovery: %+v, want live-0 at session 1", devs)
	}
}
