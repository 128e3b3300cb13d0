package firmwaresim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// This file holds the few MQTT 3.1.1 packets the lean load mode (bench)
// writes and reads itself, without a client library: CONNECT, PUBLISH,
// SUBSCRIBE and DISCONNECT out; CONNACK, PUBACK, SUBACK and PUBLISH in.

// MQTT packet types, as the high nibble of the first byte.
const (
	mqttConnect    = 1
	mqttConnack    = 2
	mqttPublish    = 3
	mqttPuback     = 4
	mqttSubscribe  = 8
	mqttSuback     = 9
	mqttDisconnect = 14
)

// errMQTTPacket reports a packet the bench cannot read.
var errMQTTPacket = errors.New("malformed MQTT packet")

// appendMQTTLength appends n as an MQTT remaining length.
func appendMQTTLength(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func appendMQTTString(b []byte, s string) []byte {
	return append(append(b, byte(len(s)>>8), byte(len(s))), s...)
}

// mqttConnectPacket is a clean-session CONNECT of client id with a
// keepalive of 10 minutes.
func mqttConnectPacket(id string) []byte {
	body := appendMQTTString(nil, "MQTT")
	body = append(body, 4, 0x02, 0x02, 0x58) // 3.1.1, clean session, keepalive 600 s
	body = appendMQTTString(body, id)
	return append(appendMQTTLength([]byte{mqttConnect << 4}, len(body)), body...)
}

// appendMQTTPublish appends a PUBLISH of payload to topic at qos (packet
// id id when qos is 1).
func appendMQTTPublish(b []byte, topic string, qos byte, id uint16, payload []byte) []byte {
	n := 2 + len(topic) + len(payload)
	if qos > 0 {
		n += 2
	}
	b = appendMQTTLength(append(b, mqttPublish<<4|qos<<1), n)
	b = appendMQTTString(b, topic)
	if qos > 0 {
		b = append(b, byte(id>>8), byte(id))
	}
	return append(b, payload...)
}

// mqttSubscribePacket subscribes to filter at QoS 0 with packet id 1.
func mqttSubscribePacket(filter string) []byte {
	body := appendMQTTString([]byte{0, 1}, filter)
	body = append(body, 0)
	return append(appendMQTTLength([]byte{mqttSubscribe<<4 | 2}, len(body)), body...)
}

var mqttDisconnectPacket = []byte{mqttDisconnect << 4, 0}

// maxBenchPacket bounds the size of a packet the bench reads: its own
// messages are small, and a larger remaining length (MQTT allows 256 MiB)
// is refused rather than allocated.
const maxBenchPacket = 1 << 20

// mqttReader reads packets from a buffered connection, reusing one
// buffer: a packet's body is valid until the next call.
type mqttReader struct {
	r   *bufio.Reader
	buf []byte
}

// next returns the type nibble, flags and body of the next packet.
func (m *mqttReader) next() (typ, flags byte, body []byte, err error) {
	first, err := m.r.ReadByte()
	if err != nil {
		return 0, 0, nil, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		d, err := m.r.ReadByte()
		if err != nil {
			return 0, 0, nil, err
		}
		n += int(d&0x7f) * mult
		mult *= 128
		if d&0x80 == 0 {
			break
		}
		if i == 3 {
			return 0, 0, nil, fmt.Errorf("%w: remaining length", errMQTTPacket)
		}
	}
	if n > maxBenchPacket {
		return 0, 0, nil, fmt.Errorf("%w: %d bytes, more than %d", errMQTTPacket, n, maxBenchPacket)
	}
	if cap(m.buf) < n {
		m.buf = make([]byte, n)
	}
	m.buf = m.buf[:n]
	if _, err := io.ReadFull(m.r, m.buf); err != nil {
		return 0, 0, nil, err
	}
	return first >> 4, first & 0x0f, m.buf, nil
}

// mqttPublishPayload returns the payload of a PUBLISH body with the given
// fixed-header flags.
func mqttPublishPayload(flags byte, body []byte) ([]byte, error) {
	if len(body) < 2 {
		return nil, fmt.Errorf("%w: publish", errMQTTPacket)
	}
	skip := 2 + int(body[0])<<8 | int(body[1])
	if flags&0x06 != 0 {
		skip += 2
	}
	if skip > len(body) {
		return nil, fmt.Errorf("%w: publish", errMQTTPacket)
	}
	return body[skip:], nil
}
