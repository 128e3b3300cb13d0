package devices

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/telehub/telehub/internal/logx"
	"github.com/telehub/telehub/internal/metrics"
)

// BrokerConfig configures the embedded MQTT broker.
type BrokerConfig struct {
	// Addr is the TCP listen address. Default "127.0.0.1:1883"; port 0
	// picks a free port (see Broker.Addr).
	Addr string
	// TLS, when set, makes the listener MQTTS. Default nil: plain TCP.
	TLS *tls.Config
	// Bridge receives readings and rejections (*bridge.Bridge). Required.
	Bridge Ingester
	// Presence tracks which devices are online (*presence.Tracker).
	// Required.
	Presence Presence
	// MaxPayload is the largest payload accepted, in bytes. Default 65536.
	MaxPayload int
	// Authenticate, when set, turns credentials on: the username is the
	// device id, the password its token, and a client may publish only
	// under its own devices/{id}/ and subscribe only there. Default nil:
	// any client connects, and a connection belongs to a device once it
	// publishes under devices/{id}/.
	Authenticate func(username, password string) bool
	// ConnectTimeout bounds the wait for a new connection's CONNECT packet
	// (TLS handshake included). Default 10s.
	ConnectTimeout time.Duration
	// Commands, when set, learns when a device subscribes to its commands
	// and receives its confirmations (PUBACK) and results. Default nil:
	// result publishes are refused.
	Commands Commander
	// Logger receives the broker's logs. Default: logs are discarded.
	Logger *slog.Logger
	// Metrics receives the broker's metrics. Default a private set.
	Metrics *metrics.Metrics
	// Limits bounds clients, sessions and retained messages; zero fields
	// take their defaults.
	Limits BrokerLimits
}

// withDefaults validates c and returns it with defaults filled.
func (c BrokerConfig) withDefaults() (BrokerConfig, error) {
	switch {
	case c.Bridge == nil:
		return c, fmt.Errorf("%w: Bridge is required", ErrInvalidConfig)
	case c.Presence == nil:
		return c, fmt.Errorf("%w: Presence is required", ErrInvalidConfig)
	case c.MaxPayload < 0 || c.ConnectTimeout < 0:
		return c, fmt.Errorf("%w: negative limit", ErrInvalidConfig)
	case c.MaxPayload > mqttMaxPayload:
		return c, fmt.Errorf("%w: MaxPayload %d is over the MQTT limit of %d", ErrInvalidConfig, c.MaxPayload, mqttMaxPayload)
	}
	limits, err := c.Limits.withDefaults()
	if err != nil {
		return c, err
	}
	c.Limits = limits
	c.Addr = cmp.Or(c.Addr, DefaultBrokerAddr)
	c.MaxPayload = cmp.Or(c.MaxPayload, DefaultMaxPayload)
	c.ConnectTimeout = cmp.Or(c.ConnectTimeout, DefaultMQTTConnectTimeout)
	c.Logger = logx.Or(c.Logger)
	c.Metrics = metrics.OrNew(c.Metrics)
	return c, nil
}

// Broker is telehub's embedded MQTT broker: a mochi-mqtt server whose hook
// turns device publishes into readings, presence and error answers.
//
// QoS 1 and 2 publishes are acknowledged only after the bridge reports the
// reading durably stored, in the order each client sent them; a client's
// QoS 1 readings wait for their commits together. Rejected payloads are answered on
// devices/{id}/errors and never cost the device its connection; a packet
// larger than the max payload plus a small margin for the topic does, as
// MQTT allows.
type Broker struct {
	cfg      BrokerConfig
	server   *mqtt.Server
	hook     *brokerHook
	sessions *mqttSessions
	ln       *mqttListener
	closing  chan struct{}
	// closeDone is closed once the close ends; closeErr is its error.
	closeDone chan struct{}
	closeErr  error

	mu      sync.Mutex
	started bool
	closed  bool
}

// NewBroker builds the broker and binds its listener; it does not accept
// connections before Start.
func NewBroker(cfg BrokerConfig) (*Broker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	maxPacket := cfg.MaxPayload + mqttPacketOverhead
	log := cfg.Logger
	server := mqtt.New(&mqtt.Options{
		InlineClient:            true,
		Capabilities:            mqttCapabilities(cfg.Limits, uint32(maxPacket)),
		Logger:                  newMQTTLogger(log, time.Now),
		SysTopicResendInterval:  mqttSysInterval,
		ClientNetReadBufferSize: mqttSessionReadBuffer,
	})
	b := &Broker{cfg: cfg, server: server, closing: make(chan struct{}), closeDone: make(chan struct{})}
	b.hook = newBrokerHook(cfg, server, b.closing, log)
	if err := server.AddHook(b.hook, nil); err != nil {
		return nil, fmt.Errorf("mqtt hook: %w", err)
	}
	b.sessions = newMQTTSessions(server, b.hook, log)
	b.ln = newMQTTListener(cfg.Addr, cfg.TLS, cfg.ConnectTimeout, log)
	b.ln.serve = b.sessions.serve
	b.ln.maxPacket = maxPacket
	b.ln.perAddr = cfg.Limits.MaxClientsPerAddress
	b.ln.refused = cfg.Metrics.MQTTRefused
	b.ln.disconnect = func(listener string) { disconnectListenerClients(server, listener) }
	if err := server.AddListener(b.ln); err != nil {
		return nil, fmt.Errorf("mqtt listen on %s: %w", cfg.Addr, err)
	}
	return b, nil
}

// Addr returns the address the broker listens on, with port 0 resolved.
func (b *Broker) Addr() net.Addr { return b.ln.ln.Addr() }

// Start starts accepting connections and returns at once. ctx is not
// kept: the broker serves until Shutdown. It returns ErrStarted when
// called twice and ErrClosed after Shutdown.
func (b *Broker) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mqtt start: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return ErrClosed
	case b.started:
		return ErrStarted
	}
	b.started = true
	if err := b.server.Serve(); err != nil {
		return fmt.Errorf("mqtt serve: %w", err)
	}
	b.cfg.Logger.Info("mqtt broker listening", "addr", b.Addr().String(), "tls", b.cfg.TLS != nil,
		"credentials", b.cfg.Authenticate != nil)
	return nil
}

// Shutdown disconnects every client, releases publishes waiting for their
// commit unacknowledged (the devices resend them), closes the listener and
// waits for the connection goroutines. When ctx ends first it returns
// ctx's error while the close goes on; a later call waits for it again.
// Every call after the close returns the close's error.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.closing)
		go b.close()
	}
	b.mu.Unlock()
	select {
	case <-b.closeDone:
		return b.closeErr
	case <-ctx.Done():
		return fmt.Errorf("mqtt shutdown: %w", ctx.Err())
	}
}

// close stops the mochi server, whose listener waits for every
// connection's session, then the sessions' round workers, delayed wills
// and command writers, and reports its error through closeErr and closeDone.
func (b *Broker) close() {
	defer close(b.closeDone)
	if err := b.server.Close(); err != nil {
		b.closeErr = fmt.Errorf("mqtt close: %w", err)
	}
	b.sessions.rounds.close()
	b.sessions.wills.close()
	b.hook.routes.close()
}

// disconnectListenerClients disconnects every open client of listener, as
// mochi's own close does, but without its Clients.GetByListener: that
// takes the clients' read lock twice, and a client added or removed in
// between (one connecting or disconnecting while the broker closes) waits
// for the first and holds up the second, so the close never ends.
func disconnectListenerClients(server *mqtt.Server, listener string) {
	for _, cl := range server.Clients.GetAll() {
		if cl.Net.Listener == listener && !cl.Closed() {
			disconnectClient(server, cl, packets.ErrServerShuttingDown)
		}
	}
}
