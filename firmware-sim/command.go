package firmwaresim

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// ErrBadCommand is wrapped by the errors of a command the hub sent that a
// device cannot read.
var ErrBadCommand = errors.New("bad command from hub")

// The commands a simulated device runs; any other name is answered with
// a failed result.
const (
	// CommandSetInterval changes the device's time between readings:
	// params {"interval":"500ms"} (a duration) or {"interval":500}
	// (milliseconds), from 2 ms to 24 h. Result {"interval_ms":500}.
	CommandSetInterval = "set_interval"
	// CommandReboot reboots the device: see device.reboot. Its result,
	// {"rebooted":true,"boot":"…"}, comes from the new boot.
	CommandReboot = "reboot"
	// CommandPing answers {"pong":true}.
	CommandPing = "ping"
)

// Bounds of set_interval.
const (
	minInterval = time.Second / maxRate
	maxInterval = 24 * time.Hour
)

// command is a command as a device receives it: a WebSocket command frame
// or the payload of a publish on devices/{id}/commands.
type command struct {
	ID     string
	Name   string
	Params json.RawMessage // a JSON object, or nil
}

// commandJSON is the JSON both transports carry a command in.
type commandJSON struct {
	ID     string          `json:"id"`
	Name   string          `json:"name"`
	Params json.RawMessage `json:"params"`
}

// parseCommand reads the MQTT payload of a command,
// {"id":…,"name":…,"params":{…},"expires":…}.
func parseCommand(b []byte) (command, error) {
	var j commandJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return command{}, fmt.Errorf("%w: %w", ErrBadCommand, err)
	}
	return j.command()
}

// command checks the fields of a command read from JSON.
func (j *commandJSON) command() (command, error) {
	if !validCommandID(j.ID) {
		return command{}, fmt.Errorf("%w: id %q", ErrBadCommand, j.ID)
	}
	if j.Name == "" {
		return command{}, fmt.Errorf("%w: command %s has no name", ErrBadCommand, j.ID)
	}
	c := command{ID: j.ID, Name: j.Name}
	if len(j.Params) > 0 && string(j.Params) != "null" {
		c.Params = j.Params
	}
	return c, nil
}

// validCommandID reports whether id can name a command in a topic and a
// frame as is: 1 to 64 letters, digits, '.', '_' or '-'.
func validCommandID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := range len(id) {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// parseInterval reads the params of set_interval: {"interval":"500ms"}
// or {"interval":500} in milliseconds.
func parseInterval(params json.RawMessage) (time.Duration, error) {
	var p struct {
		Interval json.RawMessage `json:"interval"`
	}
	if len(params) > 0 {
		if err := json.Unmarshal(params, &p); err != nil {
			return 0, fmt.Errorf("params must be a JSON object: %w", err)
		}
	}
	if len(p.Interval) == 0 || string(p.Interval) == "null" {
		return 0, errors.New(`params need "interval": a duration like "500ms" or a number of milliseconds`)
	}
	d, err := intervalValue(p.Interval)
	if err != nil {
		return 0, err
	}
	if d < minInterval || d > maxInterval {
		return 0, fmt.Errorf("interval %s is out of range: from %s to %s", d, minInterval, maxInterval)
	}
	return d, nil
}

// intervalValue reads a duration string or a number of milliseconds.
func intervalValue(raw json.RawMessage) (time.Duration, error) {
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("interval: %w", err)
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("interval %q is not a duration like \"500ms\" or \"2s\"", s)
		}
		return d, nil
	}
	ms, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(ms) || math.IsInf(ms, 0) {
		return 0, fmt.Errorf("interval %s is neither a duration string nor a number of milliseconds", raw)
	}
	if math.Abs(ms) > float64(maxInterval/time.Millisecond)*2 {
		return 0, fmt.Errorf("interval %s ms is out of range: from %s to %s", raw, minInterval, maxInterval)
	}
	return time.Duration(ms * float64(time.Millisecond)), nil
}

// commandResult is a device's answer to a command, waiting to be sent.
type commandResult struct {
	id      string
	ok      bool
	result  json.RawMessage // with ok: a JSON object, or nil
	message string          // without ok: why the command failed
}

// resultJSON is the JSON of a result: the payload of an MQTT result
// publish, or with Type and ID a WebSocket command_result frame.
type resultJSON struct {
	Type    string          `json:"type,omitempty"`
	ID      string          `json:"id,omitempty"`
	Status  string          `json:"status"`
	Result  json.RawMessage `json:"result,omitempty"`
	Message string          `json:"message,omitempty"`
}

func (r *commandResult) wire() resultJSON {
	j := resultJSON{Status: "error", Message: r.message}
	if r.ok {
		j = resultJSON{Status: "ok", Result: r.result}
	}
	return j
}

// wsFrame returns r as a command_result frame.
func (r *commandResult) wsFrame() []byte {
	j := r.wire()
	j.Type, j.ID = "command_result", r.id
	return mustJSON(j)
}

// mqttPayload returns r as the payload of a publish on
// devices/{id}/commands/{cid}/result.
func (r *commandResult) mqttPayload() []byte { return mustJSON(r.wire()) }

// mustJSON encodes v, whose fields always encode (RawMessage values are
// checked JSON or our own).
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("firmwaresim: encode: " + err.Error())
	}
	return b
}

// wsCommandAck returns the command_ack frame of command id, a valid id
// needing no escaping.
func wsCommandAck(id string) []byte {
	return []byte(`{"type":"command_ack","id":"` + id + `"}`)
}

// seenCommands remembers the ids of the last commands a device received,
// so that a command the hub sends again is not run twice.
type seenCommands struct {
	ids  map[string]struct{}
	ring []string // in arrival order, at most seenCommandsMax
	next int      // where the next id goes in ring once it is full
}

// seenCommandsMax bounds the command ids a device remembers.
const seenCommandsMax = 256

// add records id and reports whether it is new.
func (s *seenCommands) add(id string) bool {
	if _, ok := s.ids[id]; ok {
		return false
	}
	if s.ids == nil {
		s.ids = make(map[string]struct{})
	}
	if len(s.ring) < seenCommandsMax {
		s.ring = append(s.ring, id)
	} else {
		delete(s.ids, s.ring[s.next])
		s.ring[s.next] = id
		s.next = (s.next + 1) % seenCommandsMax
	}
	s.ids[id] = struct{}{}
	return true
}
