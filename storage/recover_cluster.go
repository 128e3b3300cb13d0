package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/telehub/telehub/internal/topic"
)

// What Recover does with the buckets of a hub in a cluster (cluster.go):
//   - outbox: the messages not yet forwarded to the peer hubs. One lost
//     here never reaches them, so every readable message is copied, and
//     salvage takes the copies it finds on pages the file no longer leads
//     to: a message never changes under its id, so any copy is the message
//     (two that differ are both dropped). A copy of a message the broker
//     acknowledged since is forwarded again; the peers store it once.
//   - origins: the highest origin id stored per peer hub and device, which
//     makes a peer's message sent again a duplicate. Ids only grow, so
//     salvage keeps the highest copy found: the lost value or an older one,
//     with which a message sent again can be stored twice, never lost.
// The outbox keys count among the event ids the new file's id high-water
// mark is raised to (recover_ids.go): a new write must never take the id
// of a message waiting, and the peers take a message whose origin id is
// not above the last they stored for a duplicate.

// Outbox values start with the commit time and the events' time (unix ms,
// 8 bytes big-endian each); salvage takes a value for an outbox message
// only when both lie between maxPlausibleMs and 1.
const (
	outboxTimesLen = 16
	maxPlausibleMs = 1 << 47 // the year 6429
)

// checkOutbox checks an outbox key and value as Outbox reads them.
func checkOutbox(k, v []byte) error {
	switch {
	case len(k) != 8:
		return fmt.Errorf("%w: key of %d bytes", ErrCorrupt, len(k))
	case len(v) < outboxTimesLen:
		return fmt.Errorf("%w: value of %d bytes", ErrCorrupt, len(v))
	}
	return nil
}

// checkOrigin checks a key and value of the origins bucket: a node id, a
// zero byte and a device id, and an id of 8 bytes.
func checkOrigin(k, v []byte) error {
	node, device, ok := bytes.Cut(k, []byte{0})
	switch {
	case !ok || !topic.ValidName(string(node)) || topic.ValidDeviceID(string(device)) != nil:
		return fmt.Errorf("%w: key is not a node and a device id", ErrCorrupt)
	case len(v) != 8:
		return fmt.Errorf("%w: origin id of %d bytes", ErrCorrupt, len(v))
	}
	return nil
}

// originName names an origins key as "node/device".
func originName(k []byte) string {
	node, device, ok := bytes.Cut(k, []byte{0})
	if !ok {
		return quoteKey(k)
	}
	return fmt.Sprintf("%q", string(node)+"/"+string(device))
}

// isOutbox reports whether a key and value found outside the tree look
// like an outbox message: plausible times and a message after them.
func isOutbox(k, v []byte) bool {
	if checkOutbox(k, v) != nil || len(v) == outboxTimesLen {
		return false
	}
	committed, at := binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
	return committed > 0 && committed < maxPlausibleMs && at > 0 && at < maxPlausibleMs
}

func isOrigin(k, v []byte) bool { return checkOrigin(k, v) == nil && getID(v) > 0 }

// outboxEntry copies one outbox message found outside the tree: one the
// walk copied stays; two differing copies found here are both dropped.
func (sv *salvager) outboxEntry(b *bolt.Bucket, k, v []byte) error {
	id := getID(k)
	copied, seen := sv.outboxFound[id]
	have := b.Get(k)
	switch {
	case !seen && have == nil:
		sv.outboxFound[id] = true
		sv.nOutbox++
		return b.Put(k, bytes.Clone(v))
	case copied && !bytes.Equal(have, v):
		sv.outboxFound[id] = false
		sv.nOutbox--
		sv.conflicts++
		return b.Delete(k)
	}
	return nil
}

// origin copies one origin id the walk lost, keeping the highest copy.
func (sv *salvager) origin(b *bolt.Bucket, k, v []byte) error {
	have := b.Get(k)
	if have != nil && getID(have) >= getID(v) {
		return nil
	}
	if have == nil {
		sv.nOrigins++
	}
	return b.Put(k, bytes.Clone(v))
}
