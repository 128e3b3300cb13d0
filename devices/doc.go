// Package devices owns the device-facing side of telehub: the WebSocket
// device endpoint (GET /v1/devices/{id}/ws, SPEC §4), the embedded MQTT
// broker and the external-broker client (SPEC §3), and the liveness engine
// that decides which devices are online and publishes their presence
// changes (SPEC §5).
//
// Transports parse what devices send with the bridge parsers, hand valid
// readings to the bridge (which submits them to storage) and answer the
// device once the readings are durably stored. Every sign of life goes to
// one Liveness, which numbers sessions, detects timeouts and emits presence
// events through the bridge.
//
// # Concurrency
//
// Liveness is safe for concurrent use. Its methods hold one mutex briefly;
// presence events are submitted under it so that the events of one device
// are stored in the order its state changed. One goroutine, started by
// Start and stopped by Close, handles the device timeouts of all devices
// with one timer.
//
// WS serves each device connection with one read goroutine (the gws read
// loop) and, only while answers are waiting to be written, one writer
// goroutine that writes all waiting answers with one socket write. One
// ticker goroutine pings every connection. Shutdown closes every
// connection and waits for all of these goroutines.
//
// Components take their collaborators through small interfaces declared
// next to the code that uses them; *bridge.Bridge and *Liveness satisfy
// them.
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
