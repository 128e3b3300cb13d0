package hub

import (
	"errors"
	"fmt"

	"github.com/telehub/telehub/devices/presence"
	"github.com/telehub/telehub/storage"
)

// presenceRecord is what the presence tracker needs of a stored device.
func presenceRecord(d storage.Device) presence.Record {
	return presence.Record{ID: d.ID, Transport: d.Transport, Online: d.Online, Session: d.Session, LastSeen: d.LastSeen}
}

// presenceRecords converts stored devices for the presence tracker.
func presenceRecords(ds []storage.Device) []presence.Record {
	out := make([]presence.Record, len(ds))
	for i, d := range ds {
		out[i] = presenceRecord(d)
	}
	return out
}

// storedPresence reads a device's stored presence for the tracker, which
// forgets devices long offline and reads them back when they return.
type storedPresence struct{ store *storage.Store }

// Record returns the stored presence of device: its record, or for a
// deleted device its last session; found is false for a device never
// stored.
func (s storedPresence) Record(device string) (presence.Record, bool, error) {
	if r, found, err := s.record(device); err != nil || found {
		return r, found, err
	}
	session, deleted, err := s.store.DeletedSession(device)
	if err != nil {
		return presence.Record{}, false, fmt.Errorf("read the last session of deleted device %s: %w", device, err)
	}
	if deleted {
		return presence.Record{ID: device, Session: session}, true, nil
	}
	// A write may have created the device between the two reads: it
	// moves a deleted device's session into its new record in one
	// transaction, so the record has it now.
	return s.record(device)
}

// record returns the presence in the stored record of device.
func (s storedPresence) record(device string) (presence.Record, bool, error) {
	d, _, err := s.store.Device(device)
	if errors.Is(err, storage.ErrNotFound) {
		return presence.Record{}, false, nil
	}
	if err != nil {
		return presence.Record{}, false, fmt.Errorf("read stored presence of %s: %w", device, err)
	}
	return presenceRecord(d), true, nil
}
