package presence

import "github.com/telehub/telehub/bridge"

// Delete ends what the tracker holds of device, which is being deleted. A
// device that is online goes offline first, with reason "disconnect" (its
// connections are about to be closed): that event is submitted before
// Delete returns, so a store that commits what was submitted before
// deleting the device's record never records it again. Disconnects of its
// sessions are ignored from now on; its next sign of life reads it back
// from Records (storage keeps a deleted device's last session) and starts
// its next session.
//
// # Caveats
//
// A connection of the device that is not closed right after Delete can
// start a new session with its next frame (one that speaks while the
// offline event is submitted keeps the device held, online); close the
// device's connections after calling Delete, then delete its record.
func (l *Tracker) Delete(device string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.devices[device]
	if d == nil {
		return
	}
	if d.online {
		c := l.goOffline(d, bridge.ReasonDisconnect, l.now())
		l.mu.Unlock()
		l.submit(c) // a sign of life meanwhile takes the ticket after it
		l.mu.Lock()
	}
	if l.devices[device] != d || d.online {
		return // heard again while its event was submitted: it is live
	}
	// A deadline or forget entry still queued for it finds it gone or
	// offline and drops it; Start skips it when it was recorded online.
	d.wasOnline, d.resume = false, false
	delete(l.devices, device)
	l.forgotten++ // a record being read back meanwhile is read again
}
