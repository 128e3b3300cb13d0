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
	if kind == "mqtt" {
		cfg.MQTTMaxClients = n + 10
	}
	cfg.MQTTMaxSessions = max(cfg.MQTTMaxSessions, cfg.MQTTMaxClients)
	cfg.MQTTMaxClientsPerAddress = cfg.MQTTMaxClients // every connection comes from loopback
	cfg.MaxConnections = 0                            // no cap beyond the file descriptors
	cfg.MaxConnectionsPerAddress = 0
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
		case "sse":
			c, err = idleHTTP(httpAddr, "GET /v1/stream HTTP/1.1\r\nHost: hub\r\nAccept: text/event-stream\r\n\r\n", "retry:")
		case "ws":
			c, err = idleHTTP(httpAddr, wsRequest(fmt.Sprintf("/v1/devices/idle-%06d/ws", i)), "\r\n\r\n")
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
