package hub

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/telehub/telehub/internal/config"
)

// idleEnv, when set, makes the test binary hold idle client connections
// instead of running tests (BenchmarkIdleConnMemory starts it).
const idleEnv = "TELEHUB_TEST_IDLE_CLIENTS"

var idleConns = flag.Int("idle-conns", 2000, "connections of each kind for BenchmarkIdleConnMemory")

// config4Bench is a hub with room for n connections of kind. The file
// descriptors left for HTTP connections shrink with the broker's client
// cap, so that cap is large only for MQTT.
func config4Bench(b interface{ TempDir() string }, kind string, n int) config.Config {
	cfg := config.Default()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.MQTTAddr = "127.0.0.1:0"
	cfg.DataDir = b.TempDir()
	cfg.MQTTMaxClients = 10
	if strings.HasPrefix(kind, "mqtt") {
		cfg.MQTTMaxClients = n + 10
	}
	cfg.MQTTMaxSessions = max(cfg.MQTTMaxSessions, cfg.MQTTMaxClients)
	cfg.MQTTMaxClientsPerAddress = cfg.MQTTMaxClients // every connection comes from loopback
	cfg.MaxConnections = 0                            // no cap beyond the file descriptors
	cfg.MaxConnectionsPerAddress = 0
	// The clients stay silent while thousands more connect (and a used
	// device waits for its commit): longer than the default device
	// timeout, which would close the first WebSocket connections.
	cfg.DeviceTimeout = 30 * time.Minute
	return cfg
}

func benchLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func contextTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// openIdle opens n connections of kind and waits for each to be accepted.
func openIdle(kind string, n int, httpAddr, mqttAddr string) ([]net.Conn, error) {
	conns := make([]net.Conn, 0, n)
	for i := range n {
		var c net.Conn
		var err error
		switch kind {
		case "mqtt":
			c, err = idleMQTT(mqttAddr, fmt.Sprintf("idle-%06d", i))
		case "mqtt-used":
			c, err = usedMQTT(mqttAddr, fmt.Sprintf("idle-%06d", i))
		case "mqtt-commands":
			c, err = commandsMQTT(mqttAddr, fmt.Sprintf("idle-%06d", i))
		case "sse":
			c, err = idleHTTP(httpAddr, "GET /v1/stream HTTP/1.1\r\nHost: hub\r\nAccept: text/event-stream\r\n\r\n", "retry:")
		case "ws":
			c, err = idleHTTP(httpAddr, wsRequest(fmt.Sprintf("/v1/devices/idle-%06d/ws", i)), "\r\n\r\n")
		case "ws-used":
			c, err = usedWS(httpAddr, fmt.Sprintf("idle-%06d", i))
		case "wswatch":
			c, err = idleHTTP(httpAddr, wsRequest("/v1/stream/ws"), "\r\n\r\n")
		default:
			err = fmt.Errorf("unknown kind %q", kind)
		}
		if err != nil {
			for _, c := range conns {
				_ = c.Close()
			}
			return nil, fmt.Errorf("%s connection %d: %w", kind, i, err)
		}
		conns = append(conns, c)
	}
	return conns, nil
}

func wsRequest(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: hub\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
}

// idleHTTP sends req and reads until the answer holds until.
func idleHTTP(addr, req, until string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(c, req); err != nil {
		_ = c.Close()
		return nil, err
	}
	if err := readUntil(c, []byte(until)); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// idleMQTT connects an MQTT 3.1.1 client with a clean session and a long
// keepalive and reads its CONNACK.
func idleMQTT(addr, id string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	vh := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0x02, 0x58} // keepalive 600 s
	body := append(vh, byte(len(id)>>8), byte(len(id)))
	body = append(body, id...)
	pk := append([]byte{0x10, byte(len(body))}, body...)
	if _, err := c.Write(pk); err != nil {
		_ = c.Close()
		return nil, err
	}
	var ack [4]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		_ = c.Close()
		return nil, err
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		_ = c.Close()
		return nil, fmt.Errorf("connack % x", ack)
	}
	return c, nil
}

func readUntil(c net.Conn, until []byte) error {
	var got []byte
	var buf [512]byte
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	for !bytes.Contains(got, until) {
		n, err := c.Read(buf[:])
		got = append(got, buf[:n]...)
		if err != nil {
			return fmt.Errorf("after %q: %w", got, err)
		}
	}
	if !bytes.HasPrefix(got, []byte("HTTP/1.1 200")) && !bytes.HasPrefix(got, []byte("HTTP/1.1 101")) {
		return errors.New(string(got))
	}
	return nil
}

// usedMQTT is idleMQTT after the client did what a device does: one QoS 1
// reading, acknowledged, and one PINGREQ, answered.
func usedMQTT(addr, id string) (net.Conn, error) {
	c, err := idleMQTT(addr, id)
	if err != nil {
		return nil, err
	}
	topic := "devices/" + id + "/telemetry"
	body := append([]byte{0, byte(len(topic))}, topic...)
	body = append(body, 0, 1) // packet id 1
	body = append(body, `{"seq":1,"temp":21.5}`...)
	for _, ex := range []struct{ send, want []byte }{
		{append([]byte{0x32, byte(len(body))}, body...), []byte{0x40, 2, 0, 1}},
		{[]byte{0xc0, 0}, []byte{0xd0, 0}},
	} {
		got := make([]byte, len(ex.want))
		if _, err := c.Write(ex.send); err != nil {
			_ = c.Close()
			return nil, err
		}
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, ex.want) {
			_ = c.Close()
			return nil, fmt.Errorf("answer % x, want % x: %v", got, ex.want, err)
		}
	}
	return c, nil
}

// commandsMQTT is usedMQTT after the client subscribed to its commands,
// as a device that takes commands does: the broker runs a writer for it.
func commandsMQTT(addr, id string) (net.Conn, error) {
	c, err := usedMQTT(addr, id)
	if err != nil {
		return nil, err
	}
	filter := "devices/" + id + "/commands"
	body := append([]byte{0, 2, 0, byte(len(filter))}, filter...) // packet id 2
	body = append(body, 1)                                        // QoS 1
	want := []byte{0x90, 3, 0, 2, 1}
	got := make([]byte, len(want))
	if _, err := c.Write(append([]byte{0x82, byte(len(body))}, body...)); err != nil {
		_ = c.Close()
		return nil, err
	}
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, want) {
		_ = c.Close()
		return nil, fmt.Errorf("suback % x, want % x: %v", got, want, err)
	}
	return c, nil
}

// usedWS is a WebSocket device after one telemetry frame, acknowledged,
// and one ping, answered.
func usedWS(addr, id string) (net.Conn, error) {
	c, err := idleHTTP(addr, wsRequest("/v1/devices/"+id+"/ws"), "\r\n\r\n")
	if err != nil {
		return nil, err
	}
	for _, ex := range []struct {
		send []byte
		want string
	}{
		{clientFrame(0x81, `{"type":"telemetry","seq":1,"values":{"temp":21.5}}`), "\x81" + `{"type":"ack","seq":1}`},
		{clientFrame(0x89, "p"), "\x8ap"},
	} {
		if _, err := c.Write(ex.send); err != nil {
			_ = c.Close()
			return nil, err
		}
		if got, err := serverFrame(c); err != nil || got != ex.want {
			_ = c.Close()
			return nil, fmt.Errorf("frame %q, want %q: %v", got, ex.want, err)
		}
	}
	return c, nil
}

// clientFrame is a masked, final WebSocket frame of under 126 bytes.
func clientFrame(op byte, payload string) []byte {
	mask := [4]byte{1, 2, 3, 4}
	f := append([]byte{op, 0x80 | byte(len(payload))}, mask[:]...)
	for i := range len(payload) {
		f = append(f, payload[i]^mask[i%4])
	}
	return f
}

// serverFrame reads the next unmasked frame of under 126 bytes other than
// a ping and returns its first byte and payload.
func serverFrame(c net.Conn) (string, error) {
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	for {
		var h [2]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			return "", err
		}
		p := make([]byte, h[1]&0x7f)
		if _, err := io.ReadFull(c, p); err != nil {
			return "", err
		}
		if h[0] != 0x89 { // the hub's heartbeat ping, left unanswered like an idle client's
			return string(h[:1]) + string(p), nil
		}
	}
}
