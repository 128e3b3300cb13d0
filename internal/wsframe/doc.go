// Package wsframe writes the WebSocket frames telehub sends itself
// (RFC 6455 §5.2): unmasked, final frames appended to a caller's buffer,
// so that a connection's whole backlog goes out in one write. The stream
// hub's watcher connections and the device endpoint's answers use it; the
// WebSocket library only reads and handles the handshake and close.
//
// # Concurrency
//
// Its functions are pure and safe for concurrent use.
package wsframe
