package devices

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// held is how many of host's slots the broker's listener holds.
func (b *mqttTestBroker) held(host string) int {
	b.ln.mu.Lock()
	defer b.ln.mu.Unlock()
	return b.ln.byAddr[host]
}

func (b *mqttTestBroker) refused() float64 { return testutil.ToFloat64(b.m.MQTTRefused) }

// The fourth connection from one address past a cap of three is refused
// with a CONNACK in the client's MQTT version and closed; a slot freed by
// a close admits a new one.
func TestBrokerPerAddressCap(t *testing.T) {
	b := startMQTTBroker(t, func(c *BrokerConfig) { c.Limits.MaxClientsPerAddress = 3 })
	addr := b.Addr().String()
	var first *rawMQTT
	for i, id := range []string{"c1", "c2", "c3"} {
		m, ack := dialRaw(t, addr, rawConnect{version: 4, id: id, clean: true})
		if ack.ReasonCode != packets.CodeSuccess.Code {
			t.Fatalf("%s refused with %#x under the cap", id, ack.ReasonCode)
		}
		if i == 0 {
			first = m
		}
	}
	b.waitConns(t, 3)
	for _, c := range []struct {
		version byte
		want    byte
	}{{4, packets.Err3ServerUnavailable.Code}, {3, packets.Err3ServerUnavailable.Code}, {5, packets.ErrQuotaExceeded.Code}} {
		m, ack := dialRaw(t, addr, rawConnect{version: c.version, id: "over", clean: true})
		if ack.ReasonCode != c.want {
			t.Fatalf("MQTT %d over the cap: CONNACK %#x, want %#x", c.version, ack.ReasonCode, c.want)
		}
		if got := m.closed(); len(got) != 0 {
			t.Fatalf("refused connection got %d more packets", len(got))
		}
	}
	if r := b.refused(); r != 3 {
		t.Fatalf("refused %v, want 3", r)
	}
	if _, ok := b.server.Clients.Get("over"); ok {
		t.Fatal("a refused connection reached the broker")
	}
	if n := b.conns(); n != 3 {
		t.Fatalf("hook tracks %d connections, want 3", n)
	}

	_ = first.conn.Close()
	waitFor(t, "the closed connection's slot freed", func() bool { return b.held("127.0.0.1") == 2 })
	if _, ack := dialRaw(t, addr, rawConnect{version: 4, id: "c4", clean: true}); ack.ReasonCode != packets.CodeSuccess.Code {
		t.Fatalf("freed slot refused with %#x", ack.ReasonCode)
	}
}

// A refused connection whose first packet is not a CONNECT is closed with
// no answer, and holds no slot.
func TestBrokerPerAddressCapNotConnect(t *testing.T) {
	b := startMQTTBroker(t, func(c *BrokerConfig) { c.Limits.MaxClientsPerAddress = 1 })
	dialRaw(t, b.Addr().String(), rawConnect{version: 4, id: "c1", clean: true})
	conn, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	m := &rawMQTT{t: t, conn: conn, r: bufio.NewReader(conn), version: 4}
	m.publish("devices/d1/telemetry", 0, 0, []byte(`{"temp":1}`), packets.Properties{})
	if got := m.closed(); len(got) != 0 {
		t.Fatalf("got %d packets, want the connection closed", len(got))
	}
	if r := b.refused(); r != 1 {
		t.Fatalf("refused %v, want 1", r)
	}
	if n := b.held("127.0.0.1"); n != 1 {
		t.Fatalf("held %d slots, want 1", n)
	}
}

// connectBytes is an encoded CONNECT of MQTT version.
func connectBytes(t testing.TB, version byte) []byte {
	t.Helper()
	name := []byte("MQTT")
	if version == 3 {
		name = []byte("MQIsdp")
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: version,
		Connect: packets.ConnectParams{ProtocolName: name, ClientIdentifier: "dev", Clean: true,
			PasswordFlag: true, UsernameFlag: true, Username: []byte("dev"), Password: []byte("secret")}}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestReadConnectVersion(t *testing.T) {
	for _, v := range []byte{3, 4, 5} {
		got, err := readConnectVersion(bufio.NewReader(bytes.NewReader(connectBytes(t, v))), 1024)
		if err != nil || got != v {
			t.Fatalf("version %d: got %d, %v", v, got, err)
		}
	}
	valid := connectBytes(t, 4)
	bad := map[string]struct {
		in   []byte
		want error
	}{
		"empty":            {nil, nil},
		"not connect":      {mqttRawPacket(0x30, []byte("x")), errNotConnect},
		"bad flags":        {append([]byte{0x11}, valid[1:]...), nil},
		"bad length":       {[]byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x01}, nil},
		"over the limit":   {mqttRawPacket(0x10, make([]byte, 2000)), packets.ErrPacketTooLarge},
		"truncated":        {valid[:len(valid)-3], nil},
		"malformed body":   {mqttRawPacket(0x10, []byte{0x00, 0x04, 'M'}), nil},
		"no version bytes": {mqttRawPacket(0x10, nil), nil},
	}
	for name, c := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := readConnectVersion(bufio.NewReader(bytes.NewReader(c.in)), 1024)
			if err == nil {
				t.Fatal("accepted")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
		})
	}
}

func TestRefusalConnack(t *testing.T) {
	for _, c := range []struct {
		version byte
		want    []byte
	}{
		{3, []byte{0x20, 0x02, 0x00, 0x03}},
		{4, []byte{0x20, 0x02, 0x00, 0x03}},
		{5, []byte{0x20, 0x03, 0x00, 0x97, 0x00}},
	} {
		if got := refusalConnack(c.version); !bytes.Equal(got, c.want) {
			t.Fatalf("version %d: % x, want % x", c.version, got, c.want)
		}
	}
}

func FuzzReadConnectVersion(f *testing.F) {
	f.Add(connectBytes(f, 4))
	f.Add(connectBytes(f, 5))
	f.Add([]byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := readConnectVersion(bufio.NewReader(bytes.NewReader(in)), 512)
		if err == nil && len(in) < 2 {
			t.Fatalf("version %d from %d bytes", v, len(in))
		}
	})
}
