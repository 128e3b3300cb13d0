package hub

// revoker ends the live connections of the credentials the admin API
// revokes: api.Revoker over the hub's device transports and watcher
// streams.
type revoker struct{ h *Hub }

// RevokeDevice closes the device's WebSocket connection and its MQTT
// clients on the embedded broker. A device of an external broker is
// refused there by the broker's own credentials, not by the hub.
func (r revoker) RevokeDevice(device string) int {
	n := r.h.wsDev.Revoke(device)
	if r.h.broker != nil {
		n += r.h.broker.Revoke(device)
	}
	return n
}

// RevokeWatchers ends every watcher stream whose token no longer holds.
func (r revoker) RevokeWatchers() int { return r.h.fanout.Recheck() }
