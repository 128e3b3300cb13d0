//go:build unix

package devices

// idleConnLimit is the most an idle WebSocket device may cost the hub in
// TestWSIdleConnectionMemory, in bytes: on Unix the direct reader keeps
// no deep goroutine per idle connection.
const idleConnLimit = 6000
