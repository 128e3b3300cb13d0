// Package devices owns the transports devices use to reach telehub: the
// WebSocket device endpoint (GET /v1/devices/{id}/ws), the embedded MQTT
// broker and the client of an external MQTT broker. Which devices are
// online is decided by the presence tracker of package devices/presence.
//
// Transports parse what devices send with the bridge parsers, hand valid
// readings to the bridge (which submits them to storage) and answer the
// device once the readings are durably stored. Every sign of life goes to
// one Presence, which numbers sessions, detects timeouts and emits
// presence events through the bridge.
//
// # Where things are
//
//   - collaborators.go: Ingester and Presence, what the transports need of
//     the bridge and of the presence tracker.
//   - ws.go: the WebSocket endpoint, its connection map and heartbeat;
//     ws_conn.go: one connection's state, answer slots and writer;
//     ws_answer.go: the encoding of acks and error answers;
//     ws_direct.go: the reader of plain TCP connections on Unix, which
//     parks no deep goroutine while a device is idle; ws_frame.go: its
//     frame parser, which checks and answers what gws does;
//     ws_silence.go: the close of a silent device.
//   - mqtt.go: what both MQTT transports share; mqtt_route.go: topic
//     routing and payload checks.
//   - broker.go: the embedded broker; mqtt_hook.go: its mochi hook;
//     mqtt_listener.go: its TCP/TLS listener; mqtt_session.go: a
//     connection's session, from its CONNECT to its end, run on mochi's
//     exported API in place of mochi's own; mqtt_direct.go: the reader of
//     plain TCP connections on Unix, which parks no deep goroutine while
//     a client is idle, with mqtt_feed.go, the framing it hands mochi
//     whole packets by; mqtt_will.go: wills, the delayed ones on timers;
//     mqtt_commands.go: commands to devices; mqtt_command_routes.go:
//     subscriptions to a device's commands kept outside mochi;
//     rounds.go: the round workers both direct readers share;
//     mqtt_conn.go: the connection reader that stops at a packet over
//     the size limit;
//     mqtt_compat.go: where the hook makes mochi answer as MQTT says
//     (packet ids, reason codes, session keys); mqtt_limits.go and
//     mqtt_limits_hook.go: the bounds of clients, sessions and retained
//     messages; mqtt_log.go: mochi's logger, which never logs a packet.
//   - external.go: the external-broker client; external_acks.go: its
//     in-order acknowledgements.
//
// # Concurrency
//
// WS and the embedded broker read each device connection with one read
// goroutine at a time. A plain TCP connection on Unix has a small waiter
// parked in the socket's read while the device is idle; when the device
// sends, one of a few round workers (two per processor; a fresh goroutine
// when all are busy) handles its frames or packets until the socket is
// empty and leaves a new waiter. A TLS connection, or any connection
// elsewhere, is read by a goroutine of its own (gws's read loop; mochi's
// Client.Read). mochi's writer goroutine of an MQTT client, which writes
// the messages of its subscriptions, starts with its first SUBSCRIBE
// after its CONNACK; a client subscribed to exactly its device's commands
// has none (a command route: a goroutine writes its commands only while
// some wait). Only while answers are waiting to be written, a connection
// has one writer goroutine that writes them all with one socket write. One
// ticker goroutine pings every connection. Shutdown closes every
// connection and waits for all of these goroutines.
//
// Components take their collaborators through the small interfaces of
// collaborators.go; *bridge.Bridge and *presence.Tracker satisfy them.
package devices

import (
	"errors"
	"time"
)

// Defaults shared by the package's components.
const (
	// DefaultMaxPayload is the default largest device payload in bytes
	// (--max-payload): WebSocket frames and MQTT payloads.
	DefaultMaxPayload = 64 << 10
	// DefaultDeviceTimeout is the default time after which a device with
	// nothing heard goes offline (--device-timeout).
	DefaultDeviceTimeout = 45 * time.Second
)

// Errors shared by the package's components.
var (
	// ErrInvalidConfig: a Config field is missing or out of range.
	ErrInvalidConfig = errors.New("devices: invalid config")
	// ErrClosed: the component was closed or shut down.
	ErrClosed = errors.New("devices: closed")
	// ErrStarted: Start was called on a component already started.
	ErrStarted = errors.New("devices: already started")
)
