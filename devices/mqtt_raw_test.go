package devices

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// rawMQTT is an MQTT client of raw packets, encoded and decoded with
// mochi's packet codec: it sends exactly what a test says and shows
// exactly what the broker answers.
type rawMQTT struct {
	t       testing.TB
	conn    net.Conn
	r       *bufio.Reader
	version byte
}

// rawConnect is the CONNECT of a raw client: MQTT version, client id,
// credentials (none when user is ""), clean session or start.
type rawConnect struct {
	version    byte
	id         string
	user, pass string
	clean      bool
	keepalive  uint16
	props      packets.Properties
}

// dialRaw connects and sends the CONNECT; it returns the client and the
// broker's CONNACK.
func dialRaw(t testing.TB, addr string, c rawConnect) (*rawMQTT, packets.Packet) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	m := &rawMQTT{t: t, conn: conn, r: bufio.NewReader(conn), version: c.version}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: c.version,
		Properties: c.props,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: c.id,
			Clean: c.clean, Keepalive: c.keepalive}}
	if c.user != "" {
		pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte(c.user)
		pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte(c.pass)
	}
	m.send(pk)
	ack := m.next()
	if ack.FixedHeader.Type != packets.Connack {
		t.Fatalf("got %s, want CONNACK", packets.PacketNames[ack.FixedHeader.Type])
	}
	return m, ack
}

// send encodes and writes pk.
func (m *rawMQTT) send(pk packets.Packet) {
	m.t.Helper()
	if _, err := m.conn.Write(m.encode(pk)); err != nil {
		m.t.Fatalf("write %s: %v", packets.PacketNames[pk.FixedHeader.Type], err)
	}
}

// encode returns the bytes of pk in the client's MQTT version.
func (m *rawMQTT) encode(pk packets.Packet) []byte {
	m.t.Helper()
	pk.ProtocolVersion = m.version
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Subscribe:
		pk.FixedHeader.Qos = 1
		err = pk.SubscribeEncode(&buf)
	case packets.Unsubscribe:
		pk.FixedHeader.Qos = 1
		err = pk.UnsubscribeEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		err = fmt.Errorf("no encoder for %d", pk.FixedHeader.Type)
	}
	if err != nil {
		m.t.Fatal(err)
	}
	return buf.Bytes()
}

// publish sends a PUBLISH; qos 1 needs an id.
func (m *rawMQTT) publish(topic string, qos byte, id uint16, payload []byte, props packets.Properties) {
	m.t.Helper()
	m.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName: topic, PacketID: id, Payload: payload, Properties: props})
}

// subscribe sends a SUBSCRIBE of filters at QoS 1.
func (m *rawMQTT) subscribe(id uint16, filters ...string) {
	m.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: id}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: 1})
	}
	m.send(pk)
}

// next reads the broker's next packet.
func (m *rawMQTT) next() packets.Packet {
	m.t.Helper()
	pk, err := m.read()
	if err != nil {
		m.t.Fatalf("read: %v", err)
	}
	return pk
}

// nextOf skips packets until one of type typ.
func (m *rawMQTT) nextOf(typ byte) packets.Packet {
	m.t.Helper()
	for {
		if pk := m.next(); pk.FixedHeader.Type == typ {
			return pk
		}
	}
}

// read reads and decodes one packet.
func (m *rawMQTT) read() (packets.Packet, error) {
	_ = m.conn.SetReadDeadline(time.Now().Add(waitGuard))
	var pk packets.Packet
	b, err := m.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	if pk.FixedHeader.Remaining, _, err = packets.DecodeLength(m.r); err != nil {
		return pk, err
	}
	body := make([]byte, pk.FixedHeader.Remaining)
	if _, err := io.ReadFull(m.r, body); err != nil {
		return pk, err
	}
	pk.ProtocolVersion = m.version
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Unsuback:
		err = pk.UnsubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Pingresp:
	default:
		err = fmt.Errorf("no decoder for %d", pk.FixedHeader.Type)
	}
	return pk, err
}

// closed waits until the broker closes the connection, skipping what it
// sends first, and returns the packets it sent.
func (m *rawMQTT) closed() []packets.Packet {
	m.t.Helper()
	var got []packets.Packet
	for {
		pk, err := m.read()
		if err == nil {
			got = append(got, pk)
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			m.t.Fatal("connection still open")
		}
		return got
	}
}
