// Package cluster makes several hubs full replicas of each other on one
// external MQTT broker (--cluster). Every hub subscribes to every device
// topic itself (devices.External), so MQTT device readings need nothing
// from this package. What only one hub sees travels through the broker:
//
//   - the readings of its WebSocket devices, published after their commit
//     to telehub/{cluster}/ws/{node}/{device};
//   - the presence changes of those devices, to
//     telehub/{cluster}/presence/{node}/{device};
//   - every change it makes of a command (commands.go), to
//     telehub/{cluster}/commands/{node}/{device}, which every peer applies
//     to its own copy, moving it only forward;
//   - whether the hub itself is up, retained on telehub/{cluster}/presence/{node}
//     ("online" once connected, "offline" as its will). When the
//     connection that carries the will comes back after a loss, the
//     presence of the WebSocket devices still connected is stated again
//     (Rejoined), through the outbox like any presence change.
//
// Forwarding is at least once, storing exactly once. The message of a
// write to forward is kept by the store with the write, in the same
// transaction (the outbox); one forwarder goroutine publishes the outbox
// in id order at QoS 1 and removes what the broker acknowledged. A crash,
// a broker outage or a restart therefore loses nothing that was
// acknowledged to a device: the outbox is published again, and a peer
// stores a message only once, keeping per origin node and device the
// highest origin id it stored, in the same transaction as the events
// (and, for readings with seq, the device's seq epoch as well, with the
// seqs stored in it: a reading the device's first hub forwards after the
// device moved to this hub is stored once, below the epoch's last seq).
//
// Peer messages are handed to Ingest by the broker client on its dispatch
// goroutine; Ingest never waits for the network and acknowledges (through
// the given done) only after the commit. A hub's own messages are skipped.
//
// Catch-up: after each connection the forwarder publishes a sync marker
// to the hub's own telehub/{cluster}/sync/{node}; the broker delivers it
// after everything it queued for the hub's session, so once the marker is
// acknowledged (the broker client acknowledges in arrival order, each
// message after its commit) the backlog is stored and Ready returns nil.
//
// A Cluster is built by New, attached to its broker client with Attach,
// started once by Start and stopped once by Shutdown; its methods are
// safe for concurrent use.
package cluster
