package presence

import "github.com/telehub/telehub/bridge"

// Restate emits again, through the Sink, the presence of every device
// online over transport: an online event with its current session and
// the reason its session began with, timed now. In a cluster, the hub
// calls it when the peers may have taken its devices for offline (its
// will was sent) while their connections to it went on.
//
// Each event takes the device's next ticket, like a change: it is
// submitted after the device's earlier events and before its later ones,
// so a device that goes offline meanwhile ends offline. Restate returns
// how many events it emitted, once they are submitted.
func (l *Tracker) Restate(transport string) int {
	now := l.now()
	l.mu.Lock()
	var changes []change
	for _, d := range l.devices {
		if d.online && d.transport == transport {
			reason := bridge.ReasonConnect
			if d.byMessage {
				reason = bridge.ReasonMessage
			}
			changes = append(changes, l.change(d, reason, now))
		}
	}
	l.mu.Unlock()
	for _, c := range changes {
		l.submit(c)
	}
	return len(changes)
}
