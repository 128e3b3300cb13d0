package hub

import (
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
