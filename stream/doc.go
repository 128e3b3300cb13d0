// Package stream is telehub's watcher side: the fan-out hub that
// storage feeds after each commit, the topic-filter index, each watcher's
// bounded backlog, the Server-Sent Events endpoint (GET /v1/stream), the
// WebSocket watcher endpoint (GET /v1/stream/ws), and gapless resume from
// the event log.
//
// # Data path
//
// Storage's writer goroutine calls [Hub.Publish] with each committed batch,
// in id order. Publish matches every record's topic against the index (a
// trie of topic levels with '+' and '#' nodes, so watchers whose filters do
// not match cost nothing), encodes the record at most once per wire format,
// and stages a pointer to the shared bytes for each matching watcher. At
// the end of the batch it appends each watcher's staged frames to its
// bounded backlog at once and hands the watchers to the fan-out goroutines.
// Publish never blocks on a watcher: it only takes the hub lock and each
// watcher's small backlog lock, which no one holds across I/O.
//
// The fan-out goroutines (direct.go; half the processors, at least one,
// each serving its share of the watchers) write each watcher's backlog with
// one non-blocking write on its socket: a few goroutines run per commit,
// not one per watcher. Each watcher also has one writer goroutine of its own (the
// SSE connection's, or one per WebSocket connection), woken only for what
// a non-blocking write cannot do: the rest of a write the socket buffer
// did not take, replays, heartbeats, TLS and HTTP/2 connections, failures.
// It writes under a write deadline, and the slow-watcher rule lives in
// writer.round. One lock per watcher (wmu) keeps the two writers apart, so
// bytes reach the connection in backlog order.
//
// Recheck runs Config.Authorize again for every watcher and ends the
// streams of those it now refuses (a revoked credential).
//
// # Resume
//
// A watcher is registered in the index under the hub lock, which also notes
// the last published id L. Live events after L collect in its backlog; a
// replay step, queued in the backlog ahead of them, reads the log from the
// resume point up to L in bounded chunks. Every id is thus either replayed
// or taken from the backlog, never both and never neither.
//
// # Concurrency contract
//
// All exported methods of [Hub] are safe for concurrent use. Publish must
// be called by one goroutine at a time, with records in increasing id order
// (records at or below the last published id are ignored). The hub owns
// every goroutine it starts (the heartbeat ticker, the fan-out goroutines,
// and for each WebSocket watcher its writer and its gws read loop) and counts the SSE handler
// goroutines it serves; [Hub.Shutdown] ends them all and waits.
//
// # Caveats
//
// Call Hub.Shutdown before http.Server.Shutdown: the HTTP server does not
// end streaming responses or hijacked connections by itself, so its
// Shutdown would otherwise wait for the watchers forever.
package stream
