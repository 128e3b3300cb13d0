//go:build !unix

package stream

import "net"

// newSocketWriter returns nil: outside Unix every watcher's writes are
// its own goroutine's.
func newSocketWriter(*net.TCPConn) tryWriter { return nil }
