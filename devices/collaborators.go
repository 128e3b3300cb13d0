package devices

import (
	"time"

	"github.com/telehub/telehub/bridge"
)

// Ingester is what the transports need of the bridge: readings to store
// and rejections to record. *bridge.Bridge implements it.
type Ingester interface {
	// Telemetry submits the readings of one device message; done runs once
	// they are durably stored or failed, on the store's writer goroutine.
	Telemetry(in bridge.Input, p bridge.Payload, done func(bridge.Result)) error
	// Reject records a message that was refused and says whether to
	// answer the device.
	Reject(in bridge.Input, err error) bridge.Rejection
	// Pace takes one message of device's rate limit and returns how long
	// to wait before handing it to Telemetry with Input.Paced set; 0
	// within the rate.
	Pace(device string, now time.Time) time.Duration
}

// Presence is what the transports report to the presence tracker and ask
// of it; *presence.Tracker implements it.
type Presence interface {
	// Connect starts a new session of device and returns its number once
	// its presence event is submitted.
	Connect(device, transport, reason string) (session uint64)
	// Open is Connect in two steps: it starts the session and returns its
	// number, and submit, which submits the session's presence event and
	// must be called exactly once.
	Open(device, transport, reason string) (session uint64, submit func())
	// Heard records a sign of life of device and returns its session;
	// started is true when the device was offline and this sign of life
	// started a new session.
	Heard(device, transport string) (session uint64, started bool)
	// Disconnect ends the device's session when it is still the current
	// one.
	Disconnect(device string, session uint64, reason string)
	// Session returns the device's current session and whether it is
	// online.
	Session(device string) (session uint64, online bool)
	// LastSeen returns when the device was last heard, whether it is
	// online and its transport; ok is false for a device not known.
	LastSeen(device string) (t time.Time, online bool, transport string, ok bool)
}

// Commander is what the transports tell the command service and ask of
// it; *commands.Service implements it.
type Commander interface {
	// Connected says device can receive commands now: its pending ones
	// are sent in creation order.
	Connected(device string)
	// Answer records the device's confirmation or result. device "" is a
	// confirmation the hub saw itself (an MQTT PUBACK). A *bridge.Error
	// refuses the answer (unknown id, another device's command).
	Answer(device string, a bridge.CommandAnswer) error
}
