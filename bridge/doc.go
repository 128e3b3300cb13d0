// Package bridge owns telehub's event model and everything between a device
// message and the store: parse, normalize, submit. It holds the payload
// parsers (flat and wrapped JSON objects, SenML packs, plain text, WebSocket
// device frames), the encoding of each event's data JSON (done once, at
// ingest), and the per-device rate limit on error events. Names, topics and
// topic filters are the topic package's.
//
// A Bridge turns parsed payloads, rejections and presence changes into
// Writes and submits them to the Store it was given; it never waits for the
// commit itself. The storage package implements Store.
//
// # Concurrency
//
// The parsers are pure and safe for concurrent use. A Bridge is safe for concurrent use by any number of
// transport goroutines: it keeps no state besides the error rate limiter,
// which is one mutex-guarded map. The package starts no goroutines.
//
// # Caveats
//
// Store.Submit may block while the store's queue is full, and so may
// Bridge.Telemetry, Bridge.Reject and Bridge.Presence that call it.
package bridge
