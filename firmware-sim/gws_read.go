package firmwaresim

import (
	"fmt"

	"github.com/lxzan/gws"
)

// readLoop runs gws's read loop of conn, whose handler is h. gws panics
// reading a frame whose 64-bit length has its top bit set (it takes the
// length for a negative one): such a connection is closed and ends as
// any broken connection does, with h's OnClose, instead of the panic
// ending the simulator.
func readLoop(conn *gws.Conn, h gws.Event) {
	defer func() {
		if e := recover(); e != nil {
			_ = conn.NetConn().Close()
			h.OnClose(conn, fmt.Errorf("websocket: a frame from the hub that cannot be read: %v", e))
		}
	}()
	conn.ReadLoop()
}
