package storage

import (
	"bytes"

	bolt "go.etcd.io/bbolt"
)

// ScanDevices returns, sorted by id, up to max device records whose id is
// above after ("" : from the first) and starts with prefix ("" : any), in
// one short read transaction. next is the id of the last record returned,
// to continue from as after; "" when no record with the prefix follows.
func (s *Store) ScanDevices(after, prefix string, max int) (devs []Device, next string, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDevices).Cursor()
		p := []byte(prefix)
		k, v := c.Seek(deviceSeek(after, prefix))
		for ; k != nil && bytes.HasPrefix(k, p) && len(devs) < max; k, v = c.Next() {
			d, err := readDevice(k, v)
			if err != nil {
				return err
			}
			devs = append(devs, d)
		}
		if k != nil && bytes.HasPrefix(k, p) && len(devs) > 0 {
			next = devs[len(devs)-1].ID
		}
		return nil
	})
	if err != nil {
		return nil, "", viewErr("list devices", err)
	}
	return devs, next, nil
}

// deviceSeek returns the first key a page of devices after after with
// prefix can hold: the larger of prefix and the smallest key above after.
func deviceSeek(after, prefix string) []byte {
	if after == "" || after+"\x00" < prefix {
		return []byte(prefix)
	}
	return []byte(after + "\x00")
}
