//go:build !unix

package devices

// idleConnLimit is the most an idle WebSocket device may cost the hub in
// TestWSIdleConnectionMemory, in bytes: outside Unix gws's read goroutine
// keeps a 4 KiB stack per connection.
const idleConnLimit = 8 << 10
