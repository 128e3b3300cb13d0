package storage

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// smallFile returns a data file of 1 KiB pages holding a few keys in
// telehub's buckets (the last session of a deleted device among them), one
// of them on overflow pages.
func smallFile(tb testing.TB) []byte {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "small.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{PageSize: 1024, NoFreelistSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		events, err := tx.CreateBucket(bucketEvents)
		if err != nil {
			return err
		}
		for id := uint64(1); id <= 40; id++ {
			rec := appendRecord(nil, [][]byte{appendEvent(nil, 1, int64(id), "telemetry/d/x", []byte(`{"v":1}`))})
			if err := events.Put(putID(nil, id), rec); err != nil {
				return err
			}
		}
		devices, err := tx.CreateBucket(bucketDevices)
		if err != nil {
			return err
		}
		if err := devices.Put([]byte("d"), appendDevice(nil, &deviceRec{seq: 40, hasSeq: true})); err != nil {
			return err
		}
		if err := putClusterKeys(tx); err != nil {
			return err
		}
		if err := putCommandKeys(tx); err != nil {
			return err
		}
		deleted, err := tx.CreateBucket(bucketDeleted)
		if err != nil {
			return err
		}
		if err := deleted.Put([]byte("gone"), binary.AppendUvarint(nil, 300)); err != nil {
			return err
		}
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return meta.Put(metaIdentity, make([]byte, 2000)) // overflow pages
	})
	if err == nil {
		err = db.Close()
	}
	if err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// putClusterKeys puts a few messages in the outbox, the last above the
// last event, and a few origin ids.
func putClusterKeys(tx *bolt.Tx) error {
	outbox, err := tx.CreateBucket(bucketOutbox)
	if err != nil {
		return err
	}
	for _, id := range []uint64{38, 39, 45} {
		v := binary.BigEndian.AppendUint64(nil, 1_764_064_800_125)
		v = binary.BigEndian.AppendUint64(v, 1_764_064_800_120)
		if err := outbox.Put(putID(nil, id), append(v, "message"...)); err != nil {
			return err
		}
	}
	origins, err := tx.CreateBucket(bucketOrigins)
	if err != nil {
		return err
	}
	for i, device := range []string{"d1", "d2"} {
		if err := origins.Put([]byte(originKey("hub-b", device)), putID(nil, uint64(i+7))); err != nil {
			return err
		}
	}
	return nil
}

// putCommandKeys puts two commands, one of them a peer's, with their
// index, pending list and peer id, and an index entry of a lost one.
func putCommandKeys(tx *bolt.Tx) error {
	cmds := []string{
		`{"id":"0000000000000001","device":"d","name":"reboot","params":{"n":1},"state":"sent",` +
			`"created":"2026-11-25T10:00:00.000Z","expires":"2026-11-25T11:00:00.000Z","updated":"2026-11-25T10:00:01.000Z"}`,
		`{"id":"0123456789ab-0000000000000007","device":"d","name":"reboot","state":"succeeded",` +
			`"created":"2026-11-25T10:00:00.000Z","expires":"2026-11-25T11:00:00.000Z","updated":"2026-11-25T10:00:02.000Z",` +
			`"status":"ok","result":{"x":2}}`,
	}
	buckets := make(map[string]*bolt.Bucket)
	for _, name := range [][]byte{bucketCommands, bucketCommandIndex, bucketCommandPending, bucketCommandPeers} {
		b, err := tx.CreateBucket(name)
		if err != nil {
			return err
		}
		buckets[string(name)] = b
	}
	if err := buckets[string(bucketCommands)].SetSequence(3); err != nil {
		return err
	}
	puts := []struct {
		bucket []byte
		k, v   []byte
	}{
		{bucketCommands, putSeq(1), []byte(cmds[0])},
		{bucketCommands, putSeq(2), []byte(cmds[1])},
		{bucketCommandIndex, deviceKey("d", 1), nil},
		{bucketCommandIndex, deviceKey("d", 2), nil},
		{bucketCommandIndex, deviceKey("d", 3), nil},
		{bucketCommandPending, deviceKey("d", 1), nil},
		{bucketCommandPeers, []byte("0123456789ab-0000000000000007"), putSeq(2)},
	}
	for _, p := range puts {
		if err := buckets[string(p.bucket)].Put(p.k, p.v); err != nil {
			return err
		}
	}
	return nil
}

// FuzzCheck: Check and Recover never crash on any file, and a file Check
// passes is one bbolt opens and walks without crashing.
func FuzzCheck(f *testing.F) {
	f.Add(smallFile(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "telehub.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Recover(path, filepath.Join(dir, "recovered.db")); err != nil {
			t.Fatalf("Recover: %v", err)
		}
		if err := Check(filepath.Join(dir, "recovered.db")); err != nil {
			t.Fatalf("Check of the recovered file: %v", err)
		}
		err := Check(path)
		if errors.Is(err, ErrDamaged) {
			return
		}
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		db, err := bolt.Open(path, 0o600, &bolt.Options{NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
		if err != nil {
			return // refused cleanly
		}
		defer db.Close()
		err = db.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
				return b.ForEach(func(k, v []byte) error { return nil })
			})
		})
		if err != nil {
			t.Logf("walk: %v", err)
		}
	})
}
