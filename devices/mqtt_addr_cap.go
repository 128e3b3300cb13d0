package devices

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// mqttRefusedMessage is the warning logged, at most once per mqttLogEvery,
// when connections from one address past the cap are refused.
const mqttRefusedMessage = "mqtt connection refused: too many connections from one address"

// mqttRefuseMaxConnect bounds the CONNECT read from a refused connection
// when the listener has no packet limit of its own.
const mqttRefuseMaxConnect = DefaultMaxPayload + mqttPacketOverhead

// errNotConnect is a refused connection's first packet that is not a
// CONNECT.
var errNotConnect = errors.New("first packet is not CONNECT")

// sourceHost is the host part of conn's remote address.
func sourceHost(conn net.Conn) string {
	addr := conn.RemoteAddr().String()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// admitLocked takes one of host's slots; false when host holds them all.
// l.mu must be held.
func (l *mqttListener) admitLocked(host string) bool {
	if l.perAddr > 0 && l.byAddr[host] >= l.perAddr {
		return false
	}
	l.byAddr[host]++
	return true
}

// releaseLocked frees one of host's slots. l.mu must be held.
func (l *mqttListener) releaseLocked(host string) {
	if l.byAddr[host]--; l.byAddr[host] <= 0 {
		delete(l.byAddr, host)
	}
}

// refuse answers a connection over its address's cap without handing it
// to the broker: it reads the CONNECT and answers CONNACK "server
// unavailable" (MQTT 5: 0x97 quota exceeded), then closes it.
func (l *mqttListener) refuse(conn net.Conn, host string) {
	if l.refused != nil {
		l.refused.Inc()
	}
	if ok, suppressed := l.refuseLog.allow(mqttRefusedMessage); ok {
		l.log.Warn(mqttRefusedMessage, "remote", host, "limit", l.perAddr, "suppressed", suppressed)
	}
	_ = conn.SetDeadline(time.Now().Add(l.connectTimeout))
	maxPacket := l.maxPacket
	if maxPacket <= 0 {
		maxPacket = mqttRefuseMaxConnect
	}
	version, err := readConnectVersion(bufio.NewReader(conn), maxPacket)
	if err != nil {
		l.log.Debug("mqtt refused connection ended", "remote", host, "error", err)
		return
	}
	if _, err := conn.Write(refusalConnack(version)); err != nil {
		l.log.Debug("mqtt refusal not sent", "remote", host, "error", err)
	}
}

// readConnectVersion reads one CONNECT packet of at most maxPacket bytes
// from r and returns its protocol version.
func readConnectVersion(r *bufio.Reader, maxPacket int) (byte, error) {
	b, err := r.ReadByte()
	if err != nil {
		return 0, fmt.Errorf("read fixed header: %w", err)
	}
	var fh packets.FixedHeader
	if err := fh.Decode(b); err != nil {
		return 0, fmt.Errorf("decode fixed header: %w", err)
	}
	if fh.Type != packets.Connect {
		return 0, errNotConnect
	}
	n, _, err := packets.DecodeLength(r)
	if err != nil {
		return 0, fmt.Errorf("read remaining length: %w", err)
	}
	if n+1 > maxPacket {
		return 0, fmt.Errorf("CONNECT of %d bytes: %w", n, packets.ErrPacketTooLarge)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, fmt.Errorf("read CONNECT: %w", err)
	}
	pk := packets.Packet{FixedHeader: fh}
	if err := pk.ConnectDecode(buf); err != nil {
		return 0, fmt.Errorf("decode CONNECT: %w", err)
	}
	return pk.ProtocolVersion, nil
}

// refusalConnack is the CONNACK refusing a client of protocol version:
// 0x97 quota exceeded for MQTT 5, return code 3 server unavailable before.
func refusalConnack(version byte) []byte {
	code := packets.Err3ServerUnavailable.Code
	if version == 5 {
		code = packets.ErrQuotaExceeded.Code
	}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connack},
		ProtocolVersion: version,
		ReasonCode:      code,
	}
	var buf bytes.Buffer
	_ = pk.ConnackEncode(&buf) // writes to a bytes.Buffer cannot fail
	return buf.Bytes()
}
