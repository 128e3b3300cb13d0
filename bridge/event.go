package bridge

import (
	"time"
)

// Kind is the kind of a normalized event. Its String form is the SSE event
// name and the "event" field of WebSocket and REST event objects.
type Kind uint8

// The kinds of events, one per topic root.
const (
	KindTelemetry Kind = 1 // telemetry/{device}/{metric}
	KindPresence  Kind = 2 // presence/{device}
	KindError     Kind = 3 // errors/{device}
	KindCommand   Kind = 4 // commands/{device}
)

// String returns "telemetry", "presence", "error" or "command".
func (k Kind) String() string {
	switch k {
	case KindTelemetry:
		return "telemetry"
	case KindPresence:
		return "presence"
	case KindError:
		return "error"
	case KindCommand:
		return "command"
	}
	return "unknown"
}

// Transports a device can use.
const (
	TransportWS   = "ws"
	TransportMQTT = "mqtt"
)

// Presence reasons.
const (
	ReasonConnect    = "connect"
	ReasonDisconnect = "disconnect"
	ReasonTimeout    = "timeout"
	ReasonWill       = "will"
	ReasonMessage    = "message"
)

// ValueKind says which field of a Value holds the value.
type ValueKind uint8

// The kinds of metric values.
const (
	Number ValueKind = 1
	String ValueKind = 2
	Bool   ValueKind = 3
)

// Value is one metric value: a float64, a string or a bool.
type Value struct {
	Kind ValueKind
	Num  float64
	Str  string
	Bool bool
}

// NumberValue returns a Value holding f.
func NumberValue(f float64) Value { return Value{Kind: Number, Num: f} }

// StringValue returns a Value holding s.
func StringValue(s string) Value { return Value{Kind: String, Str: s} }

// BoolValue returns a Value holding b.
func BoolValue(b bool) Value { return Value{Kind: Bool, Bool: b} }

// Reading is one metric value sent by a device, validated and normalized.
type Reading struct {
	Metric string
	Value  Value
	Unit   string    // empty when unknown
	Time   time.Time // the device's time; zero when the device sent none
}

// Payload is what one device message carries once parsed: its readings,
// the device sequence number and boot, if any, and its ts.
type Payload struct {
	Seq    uint64
	HasSeq bool
	// Boot names the device's seq epoch (the "boot" key, 1 to 64 bytes);
	// empty when the message had none.
	Boot string
	// Time is the message's "ts" key; zero when it had none. SenML times
	// of single records do not count.
	Time     time.Time
	Readings []Reading
}

// Event is a normalized event ready to be stored and fanned out. Data is
// encoded once, at ingest, and the same bytes are stored and sent to every
// watcher.
type Event struct {
	Kind   Kind
	Topic  string
	Device string
	// Metric and State are set for telemetry only: State is the latest-state
	// JSON object of the metric, {"value":…,"unit":…,"ts":…}.
	Metric string
	State  []byte
	// Data is the JSON object sent to watchers as the event's data.
	Data []byte
}

// Presence is a device's liveness state as recorded with a presence event.
type Presence struct {
	Online    bool
	Transport string
	Session   uint64
	Reason    string
}

// Write is one unit of work for the store: the events of one device message
// and the bookkeeping that goes with them. The store commits a Write whole,
// inside one group-commit transaction, or not at all.
type Write struct {
	Device    string
	Transport string    // TransportWS, TransportMQTT, or "" when unknown
	Seen      time.Time // hub receive time; becomes the device's last_seen
	// Seq deduplicates per device when HasSeq is set: a Write whose Seq is
	// not above the device's last stored seq, in the same seq epoch, stores
	// nothing and reports Duplicate. Boot and DeviceTime decide the epoch:
	// a new Boot starts one; without Boot, a lower Seq whose DeviceTime is
	// later than that of the device's last stored write starts one.
	Seq        uint64
	HasSeq     bool
	Boot       string
	DeviceTime time.Time
	Events     []Event
	// Presence, when set, updates the device record's online flag,
	// transport and session.
	Presence *Presence
	// Command, when set, creates or changes a command of Device; the store
	// makes the write's event (on commands/{device}) from the command as
	// it stands after the change, and reports the outcome in Command.
	Command *CommandOp
	// Origin is set for a write a peer hub of the cluster forwarded: the
	// store keeps, per origin node and device, the highest Origin.ID it
	// stored, and stores nothing (Duplicate) for one not above it.
	Origin *Origin
	// Outbox, when set, is the message forwarded to the peer hubs; the
	// store keeps it under the write's first event id, in the same
	// transaction, until ForwardedUpTo removes it. Only a write that
	// stores events keeps its message.
	Outbox []byte
	// ForwardedUpTo, when set, makes the write a bookkeeping one: the
	// store removes the outbox messages up to this event id (the peers'
	// broker acknowledged them). Such a write carries nothing else.
	ForwardedUpTo uint64
	// Done, when set, is called exactly once on the store's writer goroutine
	// after the commit (and after the committed events were handed to the
	// fan-out). It must not block.
	Done func(Result)
}

// Result is the outcome of a Write.
type Result struct {
	FirstID   uint64 // id of Events[0]; Events[i] has id FirstID+i
	Duplicate bool   // nothing stored: Seq not above the last stored seq of its epoch
	Err       error
}

// Input says where a device message came from.
type Input struct {
	Device    string
	Transport string // TransportWS or TransportMQTT
	// SourceTopic is the topic the device published to, or for WebSocket
	// devices "devices/{id}/ws"; it is echoed in error events and answers.
	SourceTopic string
	Received    time.Time // hub receive time
	// Raw is the message as the device sent it, for a transport whose
	// messages may be forwarded to peer hubs (WebSocket); nil otherwise.
	// It is read during the call only.
	Raw []byte
	// Origin is set for a message a peer hub forwarded (see Origin).
	Origin *Origin
	// Paced is set by a transport that already slowed this message to the
	// device's rate (Bridge.Pace): Telemetry does not check the rate again.
	Paced bool
}

// Rejection tells a transport what to do about a rejected payload after
// Bridge.Reject recorded it.
type Rejection struct {
	// Answer is true when the device should get an error answer now; false
	// when the per-device error rate limit suppressed it.
	Answer bool
	// Suppressed is how many earlier error events of this device the rate
	// limit suppressed since the last one that went out.
	Suppressed uint64
}
