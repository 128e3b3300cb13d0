// Package connlimit caps the long-lived HTTP connections of the hub
// (WebSocket devices, SSE and WebSocket watchers) in total and per source
// address, so that a flood of connections cannot take every file
// descriptor: past a cap a request is answered 503 with a JSON error and
// Retry-After before any upgrade, and the requests outside the cap
// (/healthz, /readyz, /metrics) keep being served.
//
// A slot is held for as long as the handler runs or, when the handler
// hijacks the connection for a WebSocket, until the connection is closed.
// Limiter is safe for concurrent use.
package connlimit
