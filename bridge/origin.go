package bridge

import (
	"bytes"
	"fmt"
	"time"

	"github.com/telehub/telehub/internal/jsonx"
)

// Origin names where a write was first committed when it comes from a peer
// hub of a cluster: the peer's node, the id of its first event there, and
// the ids of all its events as the peer formats them.
type Origin struct {
	// Node is the peer hub's node id.
	Node string
	// ID is the peer's sequence number of the write's first event; the
	// store keeps the highest one per node and device and stores a write
	// whose ID is not above it only once.
	ID uint64
	// EventIDs are the peer's ids of the write's events, one per event in
	// order; each event's data carries "origin":"{Node}:{EventIDs[i]}".
	EventIDs []string
}

// Forwarder makes the message a cluster sends to its peer hubs for a
// write only this hub sees, or nil when the write is not forwarded. The
// store keeps the message with the write, in the same transaction, so
// nothing acknowledged to a device is missing from what is forwarded.
type Forwarder interface {
	// Telemetry returns the message of a device's readings (Input.Raw
	// holds the message as the device sent it).
	Telemetry(in *Input, p *Payload) []byte
	// Presence returns the message of a liveness change.
	Presence(device string, p *Presence, at time.Time) []byte
}

// originKey starts the data of an event that carries its origin: origin is
// always the first member, which is how AppendOrigin knows it is there.
const originKey = `{"origin":`

// HasOrigin reports whether event data already carries its origin.
func HasOrigin(data []byte) bool { return bytes.HasPrefix(data, []byte(originKey)) }

// AppendOrigin appends to b the event data with "origin":"{node}:{id}" as
// its first member, or data unchanged when it already carries an origin or
// is not a JSON object. It is the one way origin enters event data: for
// events of a peer hub at ingest, for this hub's own events where records
// are read or fanned out.
func AppendOrigin(b, data []byte, node, id string) []byte {
	if HasOrigin(data) || len(data) < 2 || data[0] != '{' {
		return append(b, data...)
	}
	b = append(b, originKey...)
	b = jsonx.AppendString(b, node+":"+id)
	if data[1] != '}' {
		b = append(b, ',')
	}
	return append(b, data[1:]...)
}

// withOrigin gives each event of w the origin o, and w itself.
func withOrigin(w *Write, o *Origin) error {
	if len(o.EventIDs) != len(w.Events) {
		return fmt.Errorf("%w: origin of %s names %d event ids for %d events", ErrBadOrigin, o.Node, len(o.EventIDs), len(w.Events))
	}
	for i := range w.Events {
		e := &w.Events[i]
		e.Data = AppendOrigin(make([]byte, 0, len(e.Data)+len(o.Node)+len(o.EventIDs[i])+16), e.Data, o.Node, o.EventIDs[i])
	}
	w.Origin = o
	return nil
}
