package devices

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// logBuffer collects log output from many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the lines that contain s.
func (b *logBuffer) lines(s string) []string {
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

func newLogBuffer(level slog.Level) (*logBuffer, *slog.Logger) {
	b := &logBuffer{}
	return b, slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: level}))
}

func TestMQTTLogHandler(t *testing.T) {
	buf, inner := newLogBuffer(slog.LevelInfo)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	log := newMQTTLogger(inner, func() time.Time { return now })
	secret := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{Password: []byte("hunter2-token")}, Payload: []byte("payload-bytes")}

	log.Warn(mqtt.ErrMinimumKeepalive.Error(), "client", "c1", "keepalive", 0)
	for range 3 {
		log.Warn("error processing packet", "error", packets.ErrProtocolViolationSecondConnect, "pk", secret)
	}
	now = now.Add(mqttLogEvery)
	log.With("hook", "telehub").Warn("error processing packet", "pk", &secret, "group", slog.GroupValue(slog.Any("packet", secret)))
	log.Info("attached listener", "id", "telehub")

	out := buf.String()
	for _, leak := range []string{"hunter2", "payload-bytes", "104 117 110"} {
		if strings.Contains(out, leak) {
			t.Fatalf("log holds %q:\n%s", leak, out)
		}
	}
	if got := buf.lines(mqtt.ErrMinimumKeepalive.Error()); len(got) != 0 {
		t.Fatalf("keepalive logged at info or above: %q", got)
	}
	got := buf.lines("error processing packet")
	if len(got) != 2 || !strings.Contains(got[0], "pk=Connect") || !strings.Contains(got[1], "suppressed=2") {
		t.Fatalf("protocol errors logged as %q, want one line, then one with suppressed=2", got)
	}
	if len(buf.lines("attached listener")) != 1 {
		t.Fatal("info line lost")
	}

	debug, inner := newLogBuffer(slog.LevelDebug)
	newMQTTLogger(inner, time.Now).Debug("publish packet rejected", "error", packets.ErrRejectPacket, "packet", secret)
	if debug.String() != "" {
		t.Fatalf("a publish acknowledged later is logged: %q", debug.String())
	}
}

// No log line, at any level, carries a device's password after the
// hostile sequences known to make mochi log packets.
func TestBrokerNeverLogsPassword(t *testing.T) {
	const password = "tok-Secret-4242"
	buf, log := newLogBuffer(slog.LevelDebug)
	b := startMQTTBroker(t, func(c *BrokerConfig) {
		c.Logger = log
		c.MaxPayload = 1024
		c.Authenticate = func(u, p string) bool { return p == password }
	})
	addr := b.Addr().String()
	valid := rawConnect{version: 4, id: "d1", user: "d1", pass: password, clean: true}
	hostile := []struct {
		name string
		then func(c *rawMQTT)
	}{
		{"second CONNECT", func(c *rawMQTT) {
			c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
				Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: "d1",
					UsernameFlag: true, Username: []byte("d1"), PasswordFlag: true, Password: []byte(password)}})
		}},
		{"garbage", func(c *rawMQTT) { _, _ = c.conn.Write([]byte{0xf0, 0x03, 1, 2, 3}) }},
		{"packet too large", func(c *rawMQTT) {
			c.publish("devices/d1/telemetry", 0, 0, []byte(strings.Repeat(password, 1000)), packets.Properties{})
		}},
		{"refused payload then protocol error", func(c *rawMQTT) {
			c.publish("devices/d1/telemetry", 1, 1, []byte(password), packets.Properties{})
			c.nextOf(packets.Puback)
			body := append(mqttRawString("devices/d1/telemetry"), 0, 0) // packet id 0
			if c.version == 5 {
				body = append(body, 0) // no properties
			}
			_, _ = c.conn.Write(mqttRawPacket(0x32, append(body, password...)))
		}},
	}
	for _, v := range []byte{4, 5} {
		for _, tt := range hostile {
			t.Run(fmt.Sprintf("%s mqtt %d", tt.name, v), func(t *testing.T) {
				valid.version = v
				c, _ := dialRaw(t, addr, valid)
				tt.then(c)
				c.closed()
			})
		}
	}
	t.Run("wrong password", func(t *testing.T) {
		c, ack := dialRaw(t, addr, rawConnect{version: 4, id: "d1", user: "d1", pass: password + "x", clean: true})
		if ack.ReasonCode == 0 {
			t.Fatal("accepted")
		}
		c.closed()
	})
	b.waitConns(t, 0)
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if out == "" {
		t.Fatal("nothing logged")
	}
	for _, leak := range []string{password, "Secret", fmt.Sprint([]byte(password)[:6])} {
		if strings.Contains(out, strings.Trim(leak, "[]")) {
			t.Fatalf("log holds %q:\n%s", leak, out)
		}
	}
	if got := buf.lines("packet too large"); len(got) == 0 || !strings.Contains(got[0], "level=WARN") {
		t.Fatalf("packet too large logged as %q", got)
	}
}

// A client with keepalive 0 and no client id is routine: nothing at WARN.
func TestBrokerKeepaliveZeroIsNoWarning(t *testing.T) {
	buf, log := newLogBuffer(slog.LevelInfo)
	b := startMQTTBroker(t, func(c *BrokerConfig) { c.Logger = log })
	c, ack := dialRaw(t, b.Addr().String(), rawConnect{version: 4, clean: true})
	if ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %#x", ack.ReasonCode)
	}
	_ = c.conn.Close()
	b.waitConns(t, 0)
	if got := buf.lines("level=WARN"); len(got) != 0 {
		t.Fatalf("warnings: %q", got)
	}
}
