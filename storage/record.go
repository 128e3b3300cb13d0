package storage

import (
	"time"

	"github.com/telehub/telehub/bridge"
)

// Record is a committed event, as the store hands it to the fan-out after a
// commit and as it returns it from reads. Data is shared: never modify it.
type Record struct {
	ID    uint64
	Kind  bridge.Kind
	Topic string
	// Time is the hub's receive time of the message the event came from
	// (bridge.Write.Seen); retention by age uses it.
	Time time.Time
	Data []byte
}
