package storage

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/telehub/telehub/internal/topic"
)

// What Recover does with the deleted bucket (delete.go): the last presence
// session of each deleted device, from which the device's sessions go on
// when it is written again.
//   - Every entry is checked: a device id and a session as the store
//     writes it. One that fails is skipped and listed.
//   - Salvage takes the entries it finds on pages the file no longer leads
//     to. Sessions only grow, so of several copies it keeps the highest:
//     the lost one or an older one, from which a device written again
//     goes on with sessions it may have had before.
//   - The store never keeps a session here for a device that has a
//     record: the device's next write moves it into the new record. When
//     the new file holds both (one of them found in an older copy), the
//     record takes the higher session and the entry goes, as that write
//     would have done.

// checkDeleted checks a key and value of the deleted bucket.
func checkDeleted(k, v []byte) error {
	if topic.ValidDeviceID(string(k)) != nil {
		return fmt.Errorf("%w: key is not a device id", ErrCorrupt)
	}
	_, err := decodeSession(v)
	return err
}

func isDeleted(k, v []byte) bool { return checkDeleted(k, v) == nil }

// deleted copies the session of a deleted device the walk lost, keeping
// the highest copy.
func (sv *salvager) deleted(b *bolt.Bucket, k, v []byte) error {
	found, _ := decodeSession(v) // isDeleted decoded it
	have := b.Get(k)
	if have != nil {
		if old, err := decodeSession(have); err == nil && old >= found {
			return nil
		}
	} else {
		sv.nDeleted++
	}
	return b.Put(k, bytes.Clone(v))
}

// settleDeleted moves the session of each deleted device that has a
// record in the new file into that record, when it is higher, and drops
// it from the deleted bucket; it returns how many it dropped.
func settleDeleted(db *bolt.DB) (moved int, err error) {
	err = db.Update(func(tx *bolt.Tx) error {
		del, devs := tx.Bucket(bucketDeleted), tx.Bucket(bucketDevices)
		if del == nil || devs == nil {
			return nil
		}
		var both [][]byte
		_ = del.ForEach(func(k, _ []byte) error {
			if devs.Get(k) != nil {
				both = append(both, bytes.Clone(k))
			}
			return nil
		})
		for _, k := range both {
			if err := moveSession(del, devs, k); err != nil {
				return fmt.Errorf("session of deleted device %q: %w", k, err)
			}
		}
		moved = len(both)
		return nil
	})
	return moved, err
}

// moveSession gives the record of device k the session kept for it in
// del when that is higher, and removes it from del.
func moveSession(del, devs *bolt.Bucket, k []byte) error {
	session, _ := decodeSession(del.Get(k)) // the walk and salvage copied checked sessions only
	r, err := decodeDevice(devs.Get(k))     // and checked records only
	if err != nil {
		return err
	}
	if r.session < session {
		r.session = session
		if err := devs.Put(k, appendDevice(nil, &r)); err != nil {
			return err
		}
	}
	return del.Delete(k)
}
