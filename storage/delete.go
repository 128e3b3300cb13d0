package storage

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// deleteReq asks the writer goroutine to delete a device.
type deleteReq struct {
	id   string
	done chan error // capacity 1: the writer never blocks on it
}

// DeleteDevice removes the record of device id, the latest state of its
// metrics and its last stored seq, in one transaction on the writer
// goroutine after every write queued before the call is committed. Its
// retained events stay until retention drops them; a later write of the
// device creates it anew, with no seq to deduplicate against. It returns
// ErrNotFound for an unknown device and ErrClosed once Close began.
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

// deleteDeviceIn deletes the record and the latest states of device id.
func deleteDeviceIn(tx *bolt.Tx, id string) error {
	devs := tx.Bucket(bucketDevices)
	if devs.Get([]byte(id)) == nil {
		return fmt.Errorf("%w: %q", ErrNotFound, id)
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
