//go:build !unix

package devices

import "net"

// newMQTTDirect returns nil: outside Unix every connection is read on a
// goroutine of its own.
func newMQTTDirect(*mqttSession, net.Conn) mqttReader { return nil }
