//go:build !unix

package devices

import "net"

// newDirectReader returns nil: outside Unix every connection is read by
// gws's ReadLoop.
func newDirectReader(net.Conn, []byte) frameReader { return nil }
