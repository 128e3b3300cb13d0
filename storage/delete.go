package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bucketDeleted: device id -> the last presence session of a deleted
// device (uvarint), until the device is written again: its new record
// starts from that session, so that its sessions keep increasing across
// the delete. Created by the first delete.
var bucketDeleted = []byte("deleted")

// deleteReq asks the writer goroutine to delete a device.
type deleteReq struct {
	id   string
	done chan error // capacity 1: the writer never blocks on it
}

// DeleteDevice removes the record of device id, the latest state of its
// metrics and its last stored seq, in one transaction on the writer
// goroutine after every write queued before the call is committed. Its
// retained events stay until retention drops them; a later write of the
// device creates it anew, with no seq to deduplicate against. Only the
// device's last presence session is kept (DeletedSession), and the new
// record continues from it. It returns ErrNotFound for an unknown device
// and ErrClosed once Close began.
func (s *Store) DeleteDevice(id string) error {
	req := deleteReq{id: id, done: make(chan error, 1)}
	if err := s.sendDelete(req); err != nil {
		return err
	}
	return <-req.done
}

// sendDelete hands req to the writer goroutine.
func (s *Store) sendDelete(req deleteReq) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	select {
	case s.deletes <- req:
		return nil
	case <-s.closing:
		return ErrClosed
	}
}

// deleteDevice runs on the writer goroutine: it commits the writes queued
// so far, then deletes the device.
func (s *Store) deleteDevice(req deleteReq) {
	s.commitQueued()
	err := s.db.Update(func(tx *bolt.Tx) error { return deleteDeviceIn(tx, req.id) })
	if err == nil {
		delete(s.w.devices, req.id)
		s.log.Info("device deleted", "device", req.id)
	}
	req.done <- err
}

// commitQueued commits the writes queued now, and no more: later ones wait
// for the next turn of the writer loop.
func (s *Store) commitQueued() {
	for n := len(s.queue); n > 0; {
		batch := s.w.batch[:0]
		for len(batch) < min(n, s.cfg.MaxBatch) {
			batch = append(batch, <-s.queue) // only this goroutine receives: they are there
		}
		s.w.batch = batch
		n -= len(batch)
		s.commit(batch)
	}
}

// deleteDeviceIn deletes the record and the latest states of device id,
// keeping its last session.
func deleteDeviceIn(tx *bolt.Tx, id string) error {
	devs := tx.Bucket(bucketDevices)
	v := devs.Get([]byte(id))
	if v == nil {
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	// A record that cannot be decoded is deleted all the same (deleting is
	// the way out of it); its session is then lost.
	if r, err := decodeDevice(v); err == nil {
		if err := keepSession(tx, id, r.session); err != nil {
			return err
		}
	}
	if err := devs.Delete([]byte(id)); err != nil {
		return fmt.Errorf("storage: delete device %q: %w", id, err)
	}
	state := tx.Bucket(bucketState)
	prefix := stateKey(nil, id, "")
	var keys [][]byte
	c := state.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := state.Delete(k); err != nil {
			return fmt.Errorf("storage: delete state of device %q: %w", id, err)
		}
	}
	return nil
}

// keepSession records session as the last one of the deleted device id.
func keepSession(tx *bolt.Tx, id string, session uint64) error {
	b, err := tx.CreateBucketIfNotExists(bucketDeleted)
	if err == nil {
		err = b.Put([]byte(id), binary.AppendUvarint(nil, session))
	}
	if err != nil {
		return fmt.Errorf("storage: keep the session of device %q: %w", id, err)
	}
	return nil
}

// takeSession returns the last session of the deleted device id, 0 when it
// has none, and removes it: the device's new record carries it from now
// on, in the same transaction. A value that cannot be decoded goes too,
// and the device's sessions start again.
func takeSession(tx *bolt.Tx, id string) (uint64, error) {
	b := tx.Bucket(bucketDeleted)
	if b == nil {
		return 0, nil
	}
	v := b.Get([]byte(id))
	if v == nil {
		return 0, nil
	}
	session, _ := decodeSession(v)
	if err := b.Delete([]byte(id)); err != nil {
		return 0, fmt.Errorf("storage: session of deleted device %q: %w", id, err)
	}
	return session, nil
}

// decodeSession decodes a value of bucketDeleted.
func decodeSession(v []byte) (uint64, error) {
	session, n := binary.Uvarint(v)
	if n <= 0 || n != len(v) {
		return 0, fmt.Errorf("%w: session of a deleted device: %x", ErrCorrupt, v)
	}
	return session, nil
}

// DeletedSession returns the last presence session of device id when the
// device was deleted and has not been written since; found is false
// otherwise. The presence tracker continues from it, so that the sessions
// of a device deleted and created again keep increasing, also across
// restarts.
func (s *Store) DeletedSession(id string) (session uint64, found bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeleted)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(id))
		if v == nil {
			return nil
		}
		found = true
		session, err = decodeSession(v)
		return err
	})
	if err != nil {
		return 0, false, viewErr("read deleted device", err)
	}
	return session, found, nil
}
