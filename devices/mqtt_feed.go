package devices

import (
	"errors"
	"net"

	"github.com/mochi-mqtt/server/v2/packets"
)

// mqttFeed is a connection read by mqttDirect as mochi sees it: Read
// serves the bytes of the one packet handed over (b), never the socket,
// so mochi's reads of a whole packet never wait. Writes, deadlines and
// Close go to the socket.
type mqttFeed struct {
	net.Conn
	b []byte
}

// errMQTTFeedDry is a read past the packet handed over: a packet shorter
// than its header says, which mqttPacketSize rules out.
var errMQTTFeedDry = errors.New("mqtt: read past the end of the packet")

func (f *mqttFeed) Read(p []byte) (int, error) {
	if len(f.b) == 0 {
		return 0, errMQTTFeedDry
	}
	n := copy(p, f.b)
	f.b = f.b[n:]
	return n, nil
}

// mqttPacketSize reads the fixed header at the start of b: the packet's
// whole size and the header's, or 0, 0 when the header is not all there
// yet. A remaining length of more than four bytes is malformed.
func mqttPacketSize(b []byte) (size, header int, err error) {
	length, mult := 0, 1
	for i := 1; i < len(b); i++ {
		length += int(b[i]&0x7f) * mult
		mult *= 128
		switch {
		case b[i]&0x80 == 0:
			return 1 + i + length, 1 + i, nil
		case i == 4:
			return 0, 0, packets.ErrMalformedVariableByteInteger
		}
	}
	return 0, 0, nil
}
