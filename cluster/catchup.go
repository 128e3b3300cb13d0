package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/telehub/telehub/internal/metrics"
)

// catchup follows the catch-up after each connection to the broker. The
// forwarder publishes a marker (a nonce per connection) to the hub's own
// sync topic once subscribed; the broker delivers it after what it had
// queued for the session, and the broker client acknowledges messages in
// arrival order, each after its commit. So when the marker is
// acknowledged, everything queued before it is stored: caught up, until
// the next connection.
type catchup struct {
	met   metrics.Cluster
	runID string

	mu       sync.Mutex
	gen      uint64 // connections so far
	marked   uint64 // the connection whose marker went out
	caughtUp bool
	received int // messages received during this catch-up
}

func (k *catchup) init(m metrics.Cluster) {
	var b [6]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	k.met, k.runID = m, hex.EncodeToString(b[:])
}

// nonce is the marker of connection gen.
func (k *catchup) nonce(gen uint64) string { return k.runID + "-" + strconv.FormatUint(gen, 10) }

// connect starts a catch-up.
func (k *catchup) connect() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.gen++
	k.caughtUp, k.received = false, 0
	k.met.CaughtUp.Set(0)
	k.met.CatchupBacklog.Set(0)
}

// pendingMarker returns the marker to publish, if one is due.
func (k *catchup) pendingMarker() (gen uint64, nonce string, due bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.gen == 0 || k.marked == k.gen {
		return 0, "", false
	}
	return k.gen, k.nonce(k.gen), true
}

// markerSent records that the marker of connection gen went out.
func (k *catchup) markerSent(gen uint64) {
	k.mu.Lock()
	k.marked = max(k.marked, gen)
	k.mu.Unlock()
}

// arrived counts a message received from the broker.
func (k *catchup) arrived() {
	k.mu.Lock()
	if !k.caughtUp && k.gen > 0 {
		k.received++
		k.met.CatchupBacklog.Set(float64(k.received))
	}
	k.mu.Unlock()
}

// acked notes the acknowledgement of a marker: the current connection's
// ends the catch-up.
func (k *catchup) acked(payload []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.caughtUp || k.gen == 0 || string(payload) != k.nonce(k.gen) {
		return
	}
	k.caughtUp = true
	k.met.CaughtUp.Set(1)
	k.met.CatchupBacklog.Set(0)
}

// ready says whether the hub has caught up.
func (k *catchup) ready() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case k.caughtUp:
		return nil
	case k.gen == 0:
		return errors.New("cluster: not connected to the broker yet")
	}
	return fmt.Errorf("cluster: catching up with what the broker queued for this hub (%d messages received so far)", k.received)
}
