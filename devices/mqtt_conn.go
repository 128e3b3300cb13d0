package devices

import (
	"net"

	"github.com/mochi-mqtt/server/v2/packets"
)

// mqttLimitedConn is a broker connection that reads MQTT fixed headers as
// the bytes go by and stops at a packet over the size limit: the reader
// (mochi) gets every packet before it, then, on its next read, the
// connection calls onTooLarge (which tells the client why it is
// disconnected) and fails. mochi itself would drop such a client without a
// word.
//
// Read is called by the connection's one reading goroutine only; the
// embedded net.Conn serves everything else.
type mqttLimitedConn struct {
	net.Conn
	limit int
	// onTooLarge, when set (by the hook once the CONNECT is read), is
	// called once with the size of the packet over the limit.
	onTooLarge func(size int)

	framer mqttFramer
	// over is the size of the packet over the limit once met; malformed
	// is set once a remaining length of more than four bytes is met.
	over      int
	malformed bool
}

func newMQTTLimitedConn(conn net.Conn, limit int) *mqttLimitedConn {
	return &mqttLimitedConn{Conn: conn, limit: limit}
}

// Read reads up to the start of a packet over the limit.
func (c *mqttLimitedConn) Read(p []byte) (int, error) {
	if c.over > 0 || c.malformed {
		return 0, c.refuse()
	}
	n, err := c.Conn.Read(p)
	if cut, size := c.framer.scan(p[:n], c.limit); cut >= 0 {
		if size < 0 {
			c.malformed = true
		} else {
			c.over = size
		}
		if cut == 0 {
			return 0, c.refuse()
		}
		return cut, nil
	}
	return n, err
}

// refuse reports the packet over the limit, once, and returns the error
// of every later read.
func (c *mqttLimitedConn) refuse() error {
	if c.malformed {
		return packets.ErrMalformedVariableByteInteger // mochi would take a fifth length byte
	}
	if c.onTooLarge != nil {
		f := c.onTooLarge
		c.onTooLarge = nil
		f(c.over)
	}
	return packets.ErrPacketTooLarge
}

// mqttFramer follows the packet boundaries of an MQTT byte stream.
type mqttFramer struct {
	state  uint8 // framerType, framerLength, framerBody or framerLost
	length int   // remaining length decoded so far
	mult   int   // weight of the next length byte
	nlen   int   // length bytes read
	body   int   // body bytes still to skip
}

const (
	framerType   = iota // next byte is a packet's first byte
	framerLength        // reading the remaining length
	framerBody          // skipping the body
	framerLost          // malformed length: refused, stop following
)

// scan follows p, the next bytes of the stream. When a packet whose total
// size is over limit starts, it returns the offset in p where that packet
// starts (0 when it started in earlier bytes) and its size; when a
// packet's remaining length runs past four bytes, that offset and -1;
// else -1.
func (f *mqttFramer) scan(p []byte, limit int) (cut, size int) {
	start := 0
	for i := 0; i < len(p); {
		switch f.state {
		case framerType:
			start = i
			f.state, f.length, f.mult, f.nlen = framerLength, 0, 1, 0
			i++
		case framerLength:
			b := p[i]
			i++
			f.length += int(b&0x7f) * f.mult
			f.mult *= 128
			f.nlen++
			if b&0x80 != 0 {
				if f.nlen == 4 {
					f.state = framerLost
					return start, -1
				}
				continue
			}
			if total := 1 + f.nlen + f.length; total > limit {
				return start, total
			}
			f.state, f.body = framerBody, f.length
			if f.body == 0 {
				f.state = framerType
			}
		case framerBody:
			skip := min(f.body, len(p)-i)
			i += skip
			if f.body -= skip; f.body == 0 {
				f.state = framerType
			}
		default:
			return -1, 0
		}
	}
	return -1, 0
}
