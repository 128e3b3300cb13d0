package presence

// Forget drops what the tracker knows of device, emitting nothing: the
// device was deleted. Disconnects of its earlier sessions are ignored from
// now on, and its next sign of life starts it anew (session 1, reason
// message or connect).
//
// # Caveats
//
// A connection of the device that is not closed right after Forget can
// start a new session with its next frame; close the device's connections
// after calling Forget.
func (l *Tracker) Forget(device string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.devices[device]
	if d == nil {
		return
	}
	// A deadline still in the heap finds it offline and drops it; Start
	// skips it when it was recorded online.
	d.online, d.wasOnline, d.resume = false, false, false
	delete(l.devices, device)
}
