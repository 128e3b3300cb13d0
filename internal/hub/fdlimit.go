package hub

import (
	"github.com/telehub/telehub/internal/connlimit"
)

// fdReserve is the number of file descriptors kept out of every
// connection cap: the data file, the listeners, the health probes, the
// metrics scrapes and the logs still get one when the hub is at its caps.
const fdReserve = 256

// connectionLimiter returns the limiter of the long-lived HTTP
// connections. The Go runtime raises the soft RLIMIT_NOFILE to the hard
// limit at start. The cap is kept below that limit minus fdReserve and
// the embedded broker's client cap; where the limit is too low for both,
// the HTTP connections get half of what is left after the reserve. A
// configured cap above that is lowered, with a warning; 0 (no cap) takes
// that bound.
func (h *Hub) connectionLimiter() *connlimit.Limiter {
	total := h.cfg.MaxConnections
	if nofile, ok := openFileLimit(); ok {
		room := fdRoom(nofile, h.embeddedClients())
		switch {
		case total == 0:
			total = room
		case total > room:
			h.log.Warn("connection cap lowered to keep file descriptors in reserve",
				"max_connections", total, "now", room, "nofile", nofile, "reserve", fdReserve)
			total = room
		}
	}
	return connlimit.New(total, h.cfg.MaxConnectionsPerAddress)
}

// embeddedClients is the embedded broker's client cap, 0 without it.
func (h *Hub) embeddedClients() int {
	if h.cfg.MQTTAddr == "" || h.cfg.MQTTBroker != "" {
		return 0
	}
	return h.cfg.MQTTMaxClients
}

// fdRoom is how many HTTP connections nofile descriptors leave room for
// beside the reserve and mqttClients MQTT connections.
func fdRoom(nofile uint64, mqttClients int) int {
	usable := max(int(min(nofile, 1<<30))-fdReserve, 2)
	return max(usable-mqttClients, usable/2)
}
