package bridge

import (
	"encoding/json"
	"time"
)

// CommandState is the state of a command sent to a device.
type CommandState string

// The states of a command. queued → sent → delivered → succeeded or
// failed; expired when its ttl passes before a result; canceled before
// it was delivered. A state never goes back.
const (
	CommandQueued    CommandState = "queued"
	CommandSent      CommandState = "sent"
	CommandDelivered CommandState = "delivered"
	CommandSucceeded CommandState = "succeeded"
	CommandFailed    CommandState = "failed"
	CommandExpired   CommandState = "expired"
	CommandCanceled  CommandState = "canceled"
)

// Valid reports whether s is one of the command states.
func (s CommandState) Valid() bool {
	switch s {
	case CommandQueued, CommandSent, CommandDelivered, CommandSucceeded,
		CommandFailed, CommandExpired, CommandCanceled:
		return true
	}
	return false
}

// Final reports whether s is a state a command never leaves.
func (s CommandState) Final() bool {
	switch s {
	case CommandSucceeded, CommandFailed, CommandExpired, CommandCanceled:
		return true
	}
	return false
}

// CanMove reports whether a command in state from may move to state to:
// only forward, never out of a final state, never back to queued, and
// canceled only before delivered.
func CanMove(from, to CommandState) bool {
	if from.Final() || !to.Valid() {
		return false
	}
	switch to {
	case CommandSent:
		return from == CommandQueued
	case CommandDelivered, CommandCanceled:
		return from == CommandQueued || from == CommandSent
	case CommandSucceeded, CommandFailed, CommandExpired:
		return true
	}
	return false
}

// Command is a command sent to a device, as stored and as shown to
// operators and watchers.
type Command struct {
	ID     string
	Device string
	Name   string
	// Params is the command's JSON object of parameters; nil when none.
	Params  json.RawMessage
	State   CommandState
	Created time.Time
	Expires time.Time
	// Updated is when the command last changed.
	Updated time.Time
	// Result and Message are the device's answer, once it sent one; a
	// result that came after the command expired is kept here too.
	Result  json.RawMessage
	Message string
	// Status is the device's "ok" or "error", once it answered.
	Status string
}

// commandJSON is the wire form of a Command.
type commandJSON struct {
	Topic   string          `json:"topic,omitempty"`
	ID      string          `json:"id"`
	Device  string          `json:"device"`
	Name    string          `json:"name"`
	Params  json.RawMessage `json:"params,omitempty"`
	State   CommandState    `json:"state"`
	Created string          `json:"created"`
	Expires string          `json:"expires"`
	Updated string          `json:"updated"`
	Status  string          `json:"status,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Message string          `json:"message,omitempty"`
}

// wireTime is the time format of command objects: RFC 3339, UTC,
// milliseconds.
const wireTime = "2006-01-02T15:04:05.000Z07:00"

// MarshalJSON encodes c as the command object of the REST API.
func (c Command) MarshalJSON() ([]byte, error) { return json.Marshal(c.wire("")) }

// EncodeCommandEvent returns the data of the event on topic that records
// c's change: the command object with its topic.
func EncodeCommandEvent(topic string, c *Command) []byte {
	b, err := json.Marshal(c.wire(topic))
	if err != nil { // every field encodes: RawMessage values are checked JSON
		panic("bridge: encode command: " + err.Error())
	}
	return b
}

func (c *Command) wire(topic string) commandJSON {
	return commandJSON{
		Topic: topic, ID: c.ID, Device: c.Device, Name: c.Name, Params: c.Params, State: c.State,
		Created: c.Created.UTC().Format(wireTime), Expires: c.Expires.UTC().Format(wireTime),
		Updated: c.Updated.UTC().Format(wireTime), Status: c.Status, Result: c.Result, Message: c.Message,
	}
}

// UnmarshalJSON decodes the command object MarshalJSON made.
func (c *Command) UnmarshalJSON(b []byte) error {
	var w commandJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	var times [3]time.Time
	for i, s := range []string{w.Created, w.Expires, w.Updated} {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return err
		}
		times[i] = t.UTC()
	}
	*c = Command{ID: w.ID, Device: w.Device, Name: w.Name, Params: w.Params, State: w.State,
		Created: times[0], Expires: times[1], Updated: times[2], Status: w.Status, Result: w.Result, Message: w.Message}
	return nil
}

// CommandOp is a command change carried by a Write: a new command
// (Create set) or a change of the command ID of the Write's device.
type CommandOp struct {
	// Create, when set, is stored as a new command in state queued; the
	// store assigns its ID. MaxPending bounds the device's commands not
	// yet in a final state (0: no bound).
	Create     *Command
	MaxPending int

	// ID names the command to change; To is its new state. An answer of
	// the device (HasResult) is recorded with the change, and also on a
	// command that expired, whose state it then leaves as it is.
	ID        string
	To        CommandState
	HasResult bool
	Status    string
	Result    json.RawMessage
	Message   string
	// AnyDevice lets the change apply whatever the command's device (the
	// hub's own confirmations); otherwise the Write's device must be the
	// command's.
	AnyDevice bool
	// At is the time of the change. Default: the store's clock.
	At time.Time

	// Replica, when set, is the command as a peer hub of the cluster
	// stored it after a change: stored as it is when this store does not
	// hold it yet, otherwise its state moves to Replica's when that is
	// forward (never back) and the device's answer is recorded. A replica
	// that changes nothing is not an error.
	Replica *Command

	// Out and Changed are set by the store before the Write's Done: the
	// command as stored after the op, and whether its state changed.
	Out     Command
	Changed bool
}

// CommandAnswer is a device's answer to a command: a WebSocket
// command_ack or command_result frame, or an MQTT result publish.
type CommandAnswer struct {
	ID string
	// Result is set for a command_result: then Status is "ok" or "error".
	IsResult bool
	Status   string
	Result   json.RawMessage
	Message  string
}

// Command result statuses.
const (
	StatusOK    = "ok"
	StatusError = "error"
)

// FinalState returns the state a result of a moves its command to.
func (a *CommandAnswer) FinalState() CommandState {
	if a.Status == StatusOK {
		return CommandSucceeded
	}
	return CommandFailed
}

// deliveryJSON is a command as a device receives it.
type deliveryJSON struct {
	Type    string          `json:"type,omitempty"`
	ID      string          `json:"id"`
	Name    string          `json:"name"`
	Params  json.RawMessage `json:"params,omitempty"`
	Expires string          `json:"expires"`
}

// EncodeCommandFrame returns c as a device receives it over WebSocket:
// {"type":"command","id":…,"name":…,"params":{…},"expires":…}.
func EncodeCommandFrame(c *Command) []byte { return encodeDelivery(c, "command") }

// EncodeCommandPublish returns c as a device receives it over MQTT:
// {"id":…,"name":…,"params":{…},"expires":…}.
func EncodeCommandPublish(c *Command) []byte { return encodeDelivery(c, "") }

func encodeDelivery(c *Command, typ string) []byte {
	b, err := json.Marshal(deliveryJSON{Type: typ, ID: c.ID, Name: c.Name, Params: c.Params,
		Expires: c.Expires.UTC().Format(wireTime)})
	if err != nil { // params are checked JSON
		panic("bridge: encode command: " + err.Error())
	}
	return b
}
