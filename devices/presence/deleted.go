package presence

// Forget drops what the tracker holds of device at once, emitting nothing:
// the device is being deleted. Disconnects of its earlier sessions are
// ignored from now on; its next sign of life holds it again, from its
// stored record while that still exists, else anew at session 1.
//
// # Caveats
//
// A connection of the device that is not closed right after Forget can
// start a new session with its next frame; close the device's connections
// after calling Forget, then delete its record.
func (l *Tracker) Forget(device string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.devices[device]
	if d == nil {
		return
	}
	// A deadline or forget entry still queued for it finds it gone or
	// offline and drops it; Start skips it when it was recorded online.
	d.online, d.wasOnline, d.resume = false, false, false
	delete(l.devices, device)
	l.forgotten++ // a record being read back meanwhile is read again
}
