package devices

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/logx"
	"github.com/telehub/telehub/internal/metrics"
	"github.com/telehub/telehub/internal/stopper"
)

// Defaults of ExternalConfig.
const (
	DefaultExternalKeepAlive    = 30 * time.Second
	DefaultExternalMaxReconnect = 30 * time.Second
	DefaultExternalAnswerQueue  = 256
)

const (
	// externalFirstRetry is the first wait between connection attempts in
	// Start; it doubles up to MaxReconnectInterval.
	externalFirstRetry = 250 * time.Millisecond
	// externalWriteTimeout bounds a publish of an error answer.
	externalWriteTimeout = 5 * time.Second
	// externalQuiesce is how long Shutdown lets the DISCONNECT go out, in
	// milliseconds.
	externalQuiesce = 250
)

// ExternalConfig configures the client of an external MQTT broker
// (--mqtt-broker).
type ExternalConfig struct {
	// URL is the broker: tcp://host:port, ssl://, tls://, mqtt://, mqtts://,
	// ws:// or wss://. Required.
	URL string
	// ClientID identifies the hub to the broker. Required, and stable
	// across restarts of one hub: the broker keeps the hub's persistent
	// session (subscriptions and unacknowledged messages) under it. With
	// Peers, the hub opens a second connection, ClientID +
	// PeerClientSuffix, for the messages it forwards to its peers.
	ClientID string
	// ShareGroup, when set, subscribes through $share/<group>/… so that the
	// hubs of one group split the device traffic of a broker cluster.
	// Default "": every message goes to this hub.
	ShareGroup string
	// Username and Password authenticate the hub to the broker. Default
	// none.
	Username, Password string
	// TLS configures ssl://, tls://, mqtts:// and wss:// connections.
	// Default nil: the system roots.
	TLS *tls.Config
	// Bridge receives readings and rejections (*bridge.Bridge). Required.
	Bridge Ingester
	// Presence tracks which devices are online (*presence.Tracker).
	// Required.
	Presence Presence
	// Commands, when set, takes the devices' command answers and is told
	// when a device comes online; External then delivers commands (see
	// externalCommands). Default nil: no commands through the broker.
	Commands Commander
	// MaxPayload is the largest payload accepted, in bytes. Default 65536.
	MaxPayload int
	// KeepAlive is the MQTT keepalive with the broker. Default 30s.
	KeepAlive time.Duration
	// ConnectTimeout bounds one connection attempt. Default 10s.
	ConnectTimeout time.Duration
	// MaxReconnectInterval caps the wait between connection attempts, which
	// doubles from 250ms (Start) or 1s (reconnects). Default 30s.
	MaxReconnectInterval time.Duration
	// AnswerQueue bounds the error answers waiting to be published; when it
	// is full, answers are dropped and counted in metrics.MQTTDropped.
	// Default 256.
	AnswerQueue int
	// Logger receives the client's logs. Default: logs are discarded.
	Logger *slog.Logger
	// Metrics receives the client's metrics. Default a private set.
	Metrics *metrics.Metrics
	// Peers, when set, is the cluster of replicas the hub belongs to: its
	// topics are subscribed too, its messages handed to it, and its will
	// set. It excludes ShareGroup. Default nil: a single hub.
	Peers Peers
}

// withDefaults validates c and returns it with defaults filled.
func (c ExternalConfig) withDefaults() (ExternalConfig, error) {
	if err := c.validate(); err != nil {
		return c, err
	}
	c.MaxPayload = cmp.Or(c.MaxPayload, DefaultMaxPayload)
	c.KeepAlive = cmp.Or(c.KeepAlive, DefaultExternalKeepAlive)
	c.ConnectTimeout = cmp.Or(c.ConnectTimeout, DefaultMQTTConnectTimeout)
	c.MaxReconnectInterval = cmp.Or(c.MaxReconnectInterval, DefaultExternalMaxReconnect)
	c.AnswerQueue = cmp.Or(c.AnswerQueue, DefaultExternalAnswerQueue)
	c.Logger = logx.Or(c.Logger)
	c.Metrics = metrics.OrNew(c.Metrics)
	return c, nil
}

// validate checks the required fields and ranges of c.
func (c *ExternalConfig) validate() error {
	switch {
	case c.Bridge == nil:
		return fmt.Errorf("%w: Bridge is required", ErrInvalidConfig)
	case c.Presence == nil:
		return fmt.Errorf("%w: Presence is required", ErrInvalidConfig)
	case c.ClientID == "":
		return fmt.Errorf("%w: ClientID is required", ErrInvalidConfig)
	case c.Peers != nil && c.ShareGroup != "":
		return fmt.Errorf("%w: ShareGroup and Peers exclude each other: every replica needs every message", ErrInvalidConfig)
	case strings.ContainsAny(c.ShareGroup, "/+#"):
		return fmt.Errorf("%w: ShareGroup %q contains '/', '+' or '#'", ErrInvalidConfig, c.ShareGroup)
	case c.MaxPayload < 0 || c.KeepAlive < 0 || c.ConnectTimeout < 0 ||
		c.MaxReconnectInterval < 0 || c.AnswerQueue < 0:
		return fmt.Errorf("%w: negative limit", ErrInvalidConfig)
	}
	return validBrokerURL(c.URL)
}

// validBrokerURL checks that raw is a broker URL paho can dial.
func validBrokerURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: broker URL: %w", ErrInvalidConfig, err)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
	default:
		return fmt.Errorf("%w: broker URL %q: scheme must be tcp, ssl, tls, mqtt, mqtts, ws or wss", ErrInvalidConfig, raw)
	}
	if u.Host == "" {
		return fmt.Errorf("%w: broker URL %q has no host", ErrInvalidConfig, raw)
	}
	return nil
}

// External ingests device traffic from an external MQTT broker (Mosquitto,
// EMQX, HiveMQ) through paho: a persistent session subscribed at QoS 1 to
// the device topics (telemetry, heartbeat, status), whose messages are acknowledged only once
// their readings are durably stored. Through an external broker only
// publishes count for presence (including status online and offline,
// which is what a device's last will sends).
//
// paho calls the message handler on one goroutine, in order; the handler
// never blocks on the network. Acknowledgements are written by a goroutine
// of External in arrival order, error answers by another through a bounded
// queue. Both are started by Start and stopped by Shutdown.
//
// # Caveats
//
// A message whose commit fails is not acknowledged: the broker delivers it
// again on the hub's next connection, not before. Messages the broker
// queued for the hub while it was away arrive on connection, possibly
// before the subscriptions are renewed; they are handled all the same.
type External struct {
	cfg     ExternalConfig
	ingest  mqttIngest
	client  paho.Client
	store   *orderedStore  // the session's unacknowledged packets
	pub     *peerPublisher // nil without Peers
	filters map[string]byte
	acks    externalAcks
	answers chan externalAnswer
	cmds    externalCommands
	// subscribed carries the outcome of the first subscription to Start.
	subscribed chan error
	// stop ends Start and the ack, answer and command goroutines.
	stop       *stopper.Stopper
	disconnect sync.Once
	log        *slog.Logger

	mu      sync.Mutex
	started bool
	// subscribedOK is set while the subscriptions of the current
	// connection hold; subErr is the error of their last attempt.
	subscribedOK bool
	subErr       error
}

// externalAnswer is an error answer waiting to be published.
type externalAnswer struct {
	topic string
	body  []byte
}

// NewExternal builds the client; Start connects it.
func NewExternal(cfg ExternalConfig) (*External, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &External{
		cfg:        cfg,
		store:      newOrderedStore(),
		ingest:     mqttIngest{bridge: cfg.Bridge, maxPayload: cfg.MaxPayload},
		filters:    withPeerFilters(externalFilters(cfg.ShareGroup), cfg.Peers),
		answers:    make(chan externalAnswer, cfg.AnswerQueue),
		cmds:       newExternalCommands(cfg.Commands),
		subscribed: make(chan error, 1),
		stop:       stopper.New(),
		log:        cfg.Logger.With("broker", redactURL(cfg.URL)),
	}
	e.acks.wake = make(chan struct{}, 1)
	if cfg.Commands != nil {
		externalCommandFilters(e.filters, sharePrefix(cfg.ShareGroup))
	}
	e.client = paho.NewClient(e.options())
	e.pub = e.newPeerPublisher()
	return e, nil
}

// externalFilters returns the subscriptions to the device topics, all at
// QoS 1, shared through group when it is set. devices/{id}/errors, where
// the hub answers, is deliberately not among them.
func externalFilters(group string) map[string]byte {
	prefix := sharePrefix(group)
	return map[string]byte{
		prefix + "devices/+/telemetry":   1,
		prefix + "devices/+/telemetry/+": 1,
		prefix + "devices/+/heartbeat":   1,
		prefix + "devices/+/status":      1,
	}
}

// sharePrefix is the subscription prefix of share group, "" for none.
func sharePrefix(group string) string {
	if group == "" {
		return ""
	}
	return "$share/" + group + "/"
}

// redactURL drops the password from a broker URL for logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "?"
	}
	return u.Redacted()
}

// options returns the paho options of the hub's session.
func (e *External) options() *paho.ClientOptions {
	o := e.connOptions(e.cfg.ClientID, e.store).
		SetOrderMatters(true).
		SetAutoAckDisabled(true).
		SetDefaultPublishHandler(e.onMessage).
		SetOnConnectHandler(e.onConnect).
		SetConnectionLostHandler(e.onConnectionLost)
	return o
}

// connOptions returns the options every connection of the hub shares: a
// persistent session under id whose unacknowledged packets are kept in
// store, reconnected by paho.
func (e *External) connOptions(id string, store *orderedStore) *paho.ClientOptions {
	c := &e.cfg
	o := paho.NewClientOptions().
		AddBroker(c.URL).
		SetClientID(id).
		SetCleanSession(false).
		SetStore(store).
		SetAutoReconnect(true).
		SetConnectRetry(false).
		SetKeepAlive(c.KeepAlive).
		SetConnectTimeout(c.ConnectTimeout).
		SetMaxReconnectInterval(c.MaxReconnectInterval).
		SetWriteTimeout(externalWriteTimeout)
	if c.Username != "" {
		o.SetUsername(c.Username).SetPassword(c.Password)
	}
	if c.TLS != nil {
		o.SetTLSConfig(c.TLS)
	}
	return o
}

// Start connects to the broker, retrying with a backoff from 250ms doubling
// up to MaxReconnectInterval, and returns nil once connected and
// subscribed, or an error when the broker refuses a subscription. It returns
// the last connection error wrapped with ctx's error when ctx ends first,
// or with ErrClosed when Shutdown is called meanwhile; both are noticed
// between attempts, and an attempt in progress takes at most
// ConnectTimeout. Once connected, paho reconnects on its own after a
// connection loss, and the subscriptions are renewed on every connection.
// A caller that must not wait for the broker runs Start on a goroutine of
// its own.
func (e *External) Start(ctx context.Context) error {
	if err := e.begin(); err != nil {
		return err
	}
	defer e.stop.Exit()
	if err := e.connectPeers(ctx); err != nil {
		return err
	}
	if err := e.connect(ctx, e.client); err != nil {
		return err
	}
	return e.awaitSubscribed(ctx)
}

// connect connects client, retrying with a backoff from 250ms doubling up
// to MaxReconnectInterval, until ctx ends or Shutdown is called.
func (e *External) connect(ctx context.Context, client paho.Client) error {
	delay := externalFirstRetry
	for {
		tok := client.Connect()
		<-tok.Done() // paho ends an attempt within ConnectTimeout
		err := tok.Error()
		if err == nil {
			return nil
		}
		e.log.Warn("mqtt broker connection failed", "error", err, "retry_in", delay)
		if werr := e.sleep(ctx, delay); werr != nil {
			return fmt.Errorf("connect to %s: %w (last attempt: %w)", redactURL(e.cfg.URL), werr, err)
		}
		delay = min(2*delay, e.cfg.MaxReconnectInterval)
	}
}

// begin marks the client started and starts its goroutines. Start
// counts in e.stop too, so that Shutdown disconnects only once Start returned.
func (e *External) begin() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.stop.Stopping():
		return ErrClosed
	case e.started:
		return ErrStarted
	}
	e.started = true
	e.stop.Add(4)
	go e.ackLoop()
	go e.answerLoop()
	go e.commandLoop()
	return nil
}

// awaitSubscribed waits for the outcome of the first subscription, made
// by onConnect.
func (e *External) awaitSubscribed(ctx context.Context) error {
	select {
	case err := <-e.subscribed:
		if err != nil {
			return fmt.Errorf("subscribe at %s: %w", redactURL(e.cfg.URL), err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("subscribe at %s: %w", redactURL(e.cfg.URL), ctx.Err())
	case <-e.stop.Done():
		return ErrClosed
	}
}

// sleep waits d; it returns ctx's error, or ErrClosed, when they come first.
func (e *External) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-e.stop.Done():
		return ErrClosed
	}
}

// Connected reports whether the client is connected to the broker now
// (in a cluster, both of its connections).
func (e *External) Connected() bool { return e.client.IsConnectionOpen() && e.peersOpen() }

// Ready returns nil when the client is connected to the broker and holds
// its subscriptions; otherwise why not: not connected yet or any more, or
// the broker refused the subscriptions on the last connection.
func (e *External) Ready() error {
	if !e.client.IsConnectionOpen() {
		return errors.New("not connected to the broker")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.subErr != nil:
		return fmt.Errorf("subscriptions failed: %w", e.subErr)
	case !e.subscribedOK:
		return errors.New("connected, not subscribed yet")
	}
	return nil
}

// Shutdown stops the client: it waits for a running Start to notice (at
// most the attempt in progress), stops the client's goroutines, sending
// the acknowledgements of readings committed by then, and disconnects.
// Messages still waiting for their commit stay unacknowledged, and the
// broker delivers them again on the next connection. When ctx ends before
// the goroutines have stopped, it returns ctx's error without
// disconnecting; a later call waits again.
func (e *External) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.stop.Stop()
	e.mu.Unlock()
	if err := e.stop.Wait(ctx); err != nil {
		return fmt.Errorf("mqtt client shutdown: %w", err)
	}
	e.disconnect.Do(func() {
		e.client.Disconnect(externalQuiesce)
		e.disconnectPeers()
		e.cfg.Metrics.BrokerConnected.Set(0)
	})
	return nil
}

// onConnect runs on a paho goroutine after every (re)connection: it
// renews the subscriptions.
func (e *External) onConnect(c paho.Client) {
	e.cfg.Metrics.BrokerConnected.Set(1)
	e.setSubscribed(false, nil)
	err := e.subscribe(c)
	e.setSubscribed(err == nil, err)
	if err != nil {
		e.log.Error("mqtt broker connected, subscriptions failed", "error", err)
	} else {
		e.log.Info("mqtt broker connected and subscribed")
		e.peersConnected()
	}
	select {
	case e.subscribed <- err: // the first outcome is for Start
	default:
	}
}

// setSubscribed records the outcome of the subscriptions, for Ready.
func (e *External) setSubscribed(ok bool, err error) {
	e.mu.Lock()
	e.subscribedOK, e.subErr = ok, err
	e.mu.Unlock()
}

// subscribe makes the hub's subscriptions and waits for the broker's
// answer.
func (e *External) subscribe(c paho.Client) error {
	tok := c.SubscribeMultiple(e.filters, e.onMessage)
	if !tok.WaitTimeout(e.cfg.ConnectTimeout) {
		return errors.New("no SUBACK within the connect timeout")
	}
	if err := tok.Error(); err != nil {
		return err
	}
	st, ok := tok.(*paho.SubscribeToken)
	if !ok {
		return nil
	}
	for filter, qos := range st.Result() {
		if qos > 2 {
			return fmt.Errorf("broker refused the subscription to %s (code %#x)", filter, qos)
		}
	}
	return nil
}

// onConnectionLost runs on a paho goroutine when the connection drops;
// paho reconnects by itself.
func (e *External) onConnectionLost(_ paho.Client, err error) {
	e.cfg.Metrics.BrokerConnected.Set(0)
	e.log.Warn("mqtt broker connection lost", "error", err)
}

// onMessage handles one device message on paho's dispatch goroutine. It
// does not block: telemetry is submitted with a done that releases the
// message's acknowledgement, everything else is acknowledged at once
// (through the same ordered queue).
func (e *External) onMessage(_ paho.Client, m paho.Message) {
	now := time.Now()
	slot := e.acks.push(m)
	if e.peerMessage(m, slot) {
		return
	}
	if e.retainedCopy(m) {
		e.acks.release(slot, true) // acknowledged, not handled
		return
	}
	topic := m.Topic()
	r, err := routeMQTT(topic, m.Payload(), e.ingest.maxPayload)
	if r.kind == mqttForeign || r.kind == mqttAnswer {
		e.acks.release(slot, true) // not device traffic
		return
	}
	e.presence(&r, err)
	if err != nil {
		e.reject(mqttInput(rejectDevice(&r, ""), topic, now), err)
		e.acks.release(slot, true)
		return
	}
	if r.kind == mqttCommandResult || r.kind == mqttCommandAck {
		e.commandAnswer(mqttInput(r.device, topic, now), &r)
	}
	if !r.stores() {
		e.acks.release(slot, true)
		return
	}
	in := mqttInput(r.device, topic, now)
	if err := e.ingest.bridge.Telemetry(in, r.payload, slot.committed); err != nil {
		e.reject(in, mqttStoreError(err))
		e.acks.release(slot, acknowledgeRefusal(err))
	}
}

// presence applies the presence effect of a device publish.
func (e *External) presence(r *mqttRoute, err error) {
	switch {
	case r.device == "":
	case err == nil && r.wentOffline():
		statusOffline(e.cfg.Presence, r.device)
	default:
		_, started := e.cfg.Presence.Heard(r.device, bridge.TransportMQTT)
		if started || r.kind == mqttStatus && err == nil {
			e.deviceOnline(r.device) // its unconfirmed commands go again
		}
	}
}

// reject records a rejection and queues its answer without blocking.
func (e *External) reject(in bridge.Input, err error) {
	topic, body, ok := e.ingest.reject(in, err)
	if !ok {
		return
	}
	select {
	case e.answers <- externalAnswer{topic: topic, body: body}:
	default:
		e.cfg.Metrics.MQTTDropped.Inc()
	}
}

// answerLoop publishes the queued error answers at QoS 0.
func (e *External) answerLoop() {
	defer e.stop.Exit()
	for {
		select {
		case <-e.stop.Done():
			return
		case a := <-e.answers:
			e.client.Publish(a.topic, 0, false, a.body) // QoS 0: nothing to wait for
		}
	}
}

// ackLoop acknowledges released messages in arrival order until Shutdown,
// sending those released by then first.
func (e *External) ackLoop() {
	defer e.stop.Exit()
	var batch []paho.Message
	for {
		select {
		case <-e.acks.wake:
		case <-e.stop.Done():
			for _, m := range e.acks.take(batch[:0], true) {
				m.Ack()
				e.acked(m)
			}
			return
		}
		batch = e.acks.take(batch[:0], false)
		for i, m := range batch {
			m.Ack()
			e.acked(m)
			batch[i] = nil
		}
	}
}
