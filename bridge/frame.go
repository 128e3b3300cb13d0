package bridge

import (
	"time"

	"github.com/telehub/telehub/internal/jsonx"
)

// Frame types a device sends over WebSocket.
const (
	FrameTelemetry = "telemetry"
	FrameHeartbeat = "heartbeat"
)

// Frame is one WebSocket device frame, parsed.
type Frame struct {
	// Type is FrameTelemetry, FrameHeartbeat, FrameCommandAck or
	// FrameCommandResult; the members of a command answer are read by
	// ParseCommandFrame.
	Type string
	// Seq is the frame's seq when HasSeq is set.
	Seq    uint64
	HasSeq bool
	// Payload holds the readings of a telemetry frame; its Seq and HasSeq
	// are the frame's.
	Payload Payload
}

// ParseFrame parses a WebSocket device frame:
//
//	{"type":"telemetry","seq":42,"ts":1764064800000,"boot":"b7","values":{"temp":21.5}}
//	{"type":"telemetry","seq":43,"senml":[{"n":"temp","v":21.5}]}
//	{"type":"heartbeat"}
//
// seq, ts and boot are optional and follow the rules of ParseTelemetry; ts applies
// to the readings that have no SenML time of their own. A telemetry frame
// carries exactly one of values and senml, with at least one reading; a
// heartbeat carries neither. Unknown keys are ignored; an unknown or missing
// type is an error. Errors are *Error values with CodeBadRequest; the Frame
// returned with an error still carries Seq and HasSeq when the frame's seq
// could be read, so that the error answer can name it.
func ParseFrame(b []byte) (Frame, error) {
	return parseFrame(b, time.Now)
}

// parseFrame is ParseFrame with the clock for relative SenML times.
func parseFrame(b []byte, now func() time.Time) (Frame, error) {
	f, err := readFrame(b, now)
	if err != nil {
		seq, ok := scanSeq(b)
		return Frame{Seq: seq, HasSeq: ok}, err
	}
	return f, nil
}

// frameState collects a frame as it is read.
type frameState struct {
	f    Frame
	ts   time.Time
	seen keySet
	now  func() time.Time
}

// readFrame reads a whole frame.
func readFrame(b []byte, now func() time.Time) (Frame, error) {
	r := reader{b: b}
	if err := r.open('{', "a JSON object"); err != nil {
		return Frame{}, err
	}
	st := frameState{now: now}
	for first := true; ; first = false {
		more, err := r.more('}', first)
		if err != nil {
			return Frame{}, err
		}
		if !more {
			break
		}
		key, err := r.key()
		if err != nil {
			return Frame{}, err
		}
		if err := r.frameMember(&st, key); err != nil {
			return Frame{}, err
		}
	}
	if err := r.end(); err != nil {
		return Frame{}, err
	}
	return st.finish()
}

// frameMember reads the value of one member of a frame.
func (r *reader) frameMember(st *frameState, key []byte) error {
	var err error
	switch string(key) {
	case "type":
		if err = st.seen.add(keyType, "type"); err == nil {
			st.f.Type, err = r.frameType()
		}
	case "seq":
		if err = st.seen.add(keySeq, "seq"); err == nil {
			st.f.Seq, err = r.seq()
			st.f.HasSeq = err == nil
		}
	case "ts":
		if err = st.seen.add(keyTS, "ts"); err == nil {
			st.ts, err = r.timestamp("ts")
		}
	case "boot":
		if err = st.seen.add(keyBoot, "boot"); err == nil {
			st.f.Payload.Boot, err = r.boot()
		}
	case "values":
		if err = st.seen.add(keyValues, "values"); err == nil {
			st.f.Payload.Readings, err = r.metrics(st.f.Payload.Readings)
		}
	case "senml":
		if err = st.seen.add(keySenML, "senml"); err == nil {
			st.f.Payload.Readings, err = r.senml(st.now, st.f.Payload.Readings)
		}
	default:
		err = r.skip(0)
	}
	return err
}

// frameType reads the type of a frame.
func (r *reader) frameType() (string, error) {
	if r.peek() != '"' {
		if err := r.skip(0); err != nil {
			return "", err
		}
		return "", Errorf("type: must be a string")
	}
	s, err := r.str()
	if err != nil {
		return "", err
	}
	switch string(s) {
	case FrameTelemetry:
		return FrameTelemetry, nil
	case FrameHeartbeat:
		return FrameHeartbeat, nil
	case FrameCommandAck:
		return FrameCommandAck, nil
	case FrameCommandResult:
		return FrameCommandResult, nil
	}
	return "", Errorf(`type %s: unknown frame type (want "telemetry", "heartbeat", "command_ack" or "command_result")`, jsonx.Quote(string(s)))
}

// finish checks the frame as a whole.
func (st *frameState) finish() (Frame, error) {
	f := st.f
	hasValues, hasSenML := st.seen&keyValues != 0, st.seen&keySenML != 0
	switch {
	case f.Type == "":
		return Frame{}, Errorf("type: missing")
	case f.Type == FrameCommandAck || f.Type == FrameCommandResult:
		return f, nil // ParseCommandFrame reads the rest
	case f.Type == FrameHeartbeat && (hasValues || hasSenML):
		return Frame{}, Errorf("heartbeat frame: must not carry values or senml")
	case f.Type == FrameHeartbeat:
		return f, nil
	case hasValues && hasSenML:
		return Frame{}, Errorf("values and senml: a telemetry frame carries only one of them")
	case len(f.Payload.Readings) == 0:
		return Frame{}, errNoReadings()
	}
	if hasSenML {
		// A SenML pack may hold several readings of one metric (a series).
		applyTime(f.Payload.Readings, st.ts)
	} else if err := finishReadings(f.Payload.Readings, st.ts); err != nil {
		return Frame{}, err
	}
	f.Payload.Seq, f.Payload.HasSeq, f.Payload.Time = f.Seq, f.HasSeq, st.ts
	return f, nil
}

// scanSeq looks for a valid top-level "seq" in a frame that failed to
// parse, reading only as far as the JSON is well formed.
func scanSeq(b []byte) (uint64, bool) {
	r := reader{b: b}
	if r.open('{', "") != nil {
		return 0, false
	}
	for first := true; ; first = false {
		more, err := r.more('}', first)
		if err != nil || !more {
			return 0, false
		}
		key, err := r.key()
		if err != nil {
			return 0, false
		}
		if string(key) == "seq" {
			seq, err := r.seq()
			return seq, err == nil
		}
		if r.skip(0) != nil {
			return 0, false
		}
	}
}
