package devices

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/metrics"
)

// Defaults of BrokerConfig and ExternalConfig.
const (
	// DefaultBrokerAddr is the embedded broker's default listen address
	// (--mqtt-addr).
	DefaultBrokerAddr = "127.0.0.1:1883"
	// DefaultMQTTConnectTimeout bounds the wait for a new MQTT connection
	// to be established (CONNECT on the embedded broker, CONNACK from an
	// external one).
	DefaultMQTTConnectTimeout = 10 * time.Second
)

const (
	// mqttHeartbeatMax is the largest heartbeat payload (SPEC §3).
	mqttHeartbeatMax = 1 << 10
	// mqttPacketOverhead is what an MQTT packet may carry besides its
	// payload (fixed header, topic, properties) before the broker refuses
	// it outright and drops the connection. Payloads over the max payload
	// but within this margin are refused with an error answer instead.
	mqttPacketOverhead = 4 << 10
	// mqttMaxPayload is the largest MaxPayload: an MQTT packet is at most
	// 256 MiB.
	mqttMaxPayload = 256<<20 - mqttPacketOverhead
	// mqttRecheck is the pause in a connection's traffic after which it
	// checks that it still holds its device's liveness session; device
	// timeouts are expected to be longer.
	mqttRecheck = time.Second
	// mqttSysInterval is how often the broker refreshes its $SYS topics,
	// in seconds.
	mqttSysInterval = 60
)

// mqttIngester is what the MQTT transports need from the bridge
// (*bridge.Bridge).
type mqttIngester interface {
	Telemetry(in bridge.Input, p bridge.Payload, done func(bridge.Result)) error
	Reject(in bridge.Input, err error) bridge.Rejection
}

// mqttPresence is what the MQTT transports need from the liveness engine
// (*Liveness).
type mqttPresence interface {
	Connect(device, transport, reason string) (session uint64)
	Heard(device, transport string)
	Disconnect(device string, session uint64, reason string)
	Session(device string) (session uint64, online bool)
}

// The collaborators telehub wires in satisfy the interfaces above.
var (
	_ mqttIngester = (*bridge.Bridge)(nil)
	_ mqttPresence = (*Liveness)(nil)
)

// ---------------------------------------------------------------------------
// Topic routing, shared by the embedded broker and the external client.

// mqttTopicKind says what a topic under devices/ carries.
type mqttTopicKind uint8

// The kinds of device topics.
const (
	mqttForeign   mqttTopicKind = iota // not under devices/: not the hub's business
	mqttInvalid                        // under devices/ but no topic a device publishes to
	mqttTelemetry                      // devices/{id}/telemetry
	mqttMetric                         // devices/{id}/telemetry/{metric}
	mqttHeartbeat                      // devices/{id}/heartbeat
	mqttStatus                         // devices/{id}/status
	mqttAnswer                         // devices/{id}/errors: the hub's own answers
)

// mqttRoute is a publish routed by its topic and checked by its payload.
type mqttRoute struct {
	kind mqttTopicKind
	// device is the valid device id the topic names, or "" when the topic
	// names none (foreign topic or invalid id).
	device string
	// rawID is the device segment of the topic as published, valid or not.
	rawID  string
	metric string
	// online is the value of a valid status payload.
	online bool
	// payload holds the readings of a valid telemetry publish.
	payload bridge.Payload
}

// stores reports whether the route carries readings to store.
func (r *mqttRoute) stores() bool { return r.kind == mqttTelemetry || r.kind == mqttMetric }

// wentOffline reports whether the route is a valid status "offline".
func (r *mqttRoute) wentOffline() bool { return r.kind == mqttStatus && !r.online }

// routeMQTT routes one publish: it parses the topic, checks the payload
// against its kind and maxPayload and parses telemetry. On a rejection it
// returns the route as far as it got (device set when the topic names a
// valid one) and a *bridge.Error.
func routeMQTT(topic string, payload []byte, maxPayload int) (mqttRoute, error) {
	r, err := parseDeviceTopic(topic)
	if err != nil || r.kind == mqttForeign || r.kind == mqttAnswer {
		return r, err
	}
	if len(payload) > maxPayload {
		return r, &bridge.Error{Code: bridge.CodePayloadTooLarge,
			Message: fmt.Sprintf("payload of %d bytes is over the limit of %d bytes", len(payload), maxPayload)}
	}
	err = checkDevicePayload(&r, payload)
	return r, err
}

// parseDeviceTopic routes a topic without looking at the payload.
func parseDeviceTopic(topic string) (mqttRoute, error) {
	rest, ok := strings.CutPrefix(topic, "devices/")
	if !ok {
		return mqttRoute{kind: mqttForeign}, nil
	}
	id, sub, _ := strings.Cut(rest, "/")
	r := mqttRoute{kind: mqttInvalid, rawID: id}
	if err := bridge.ValidDeviceID(id); err != nil {
		return r, err
	}
	r.device = id
	switch sub {
	case "telemetry":
		r.kind = mqttTelemetry
	case "heartbeat":
		r.kind = mqttHeartbeat
	case "status":
		r.kind = mqttStatus
	case "errors":
		r.kind = mqttAnswer
	default:
		metric, ok := strings.CutPrefix(sub, "telemetry/")
		if !ok {
			return r, bridge.Errorf("unknown topic %q: devices publish to devices/{id}/telemetry, "+
				"devices/{id}/telemetry/{metric}, devices/{id}/heartbeat or devices/{id}/status", topic)
		}
		if err := bridge.ValidMetric(metric); err != nil {
			return r, err
		}
		r.kind, r.metric = mqttMetric, metric
	}
	return r, nil
}

// checkDevicePayload validates payload for the kind of r and parses
// telemetry into r.payload.
func checkDevicePayload(r *mqttRoute, payload []byte) error {
	var err error
	switch r.kind {
	case mqttTelemetry:
		r.payload, err = bridge.ParseTelemetry(payload)
	case mqttMetric:
		r.payload, err = bridge.ParsePlain(r.metric, payload)
	case mqttHeartbeat:
		if len(payload) > mqttHeartbeatMax {
			err = &bridge.Error{Code: bridge.CodePayloadTooLarge,
				Message: fmt.Sprintf("heartbeat of %d bytes is over the limit of %d bytes", len(payload), mqttHeartbeatMax)}
		}
	case mqttStatus:
		switch string(payload) {
		case "online":
			r.online = true
		case "offline":
		default:
			err = bridge.Errorf("status payload must be \"online\" or \"offline\"")
		}
	}
	return err
}

// mqttIngest is the part of device message handling both MQTT transports
// share: the bridge, the payload limit and how rejections are answered.
type mqttIngest struct {
	bridge     mqttIngester
	maxPayload int
}

// mqttInput describes a publish to device's topic for the bridge.
func mqttInput(device, topic string, at time.Time) bridge.Input {
	return bridge.Input{Device: device, Transport: bridge.TransportMQTT, SourceTopic: topic, Received: at}
}

// reject records a rejected publish with the bridge. When the device
// should be answered now, it returns the answer's topic and body.
func (g *mqttIngest) reject(in bridge.Input, err error) (topic string, body []byte, answer bool) {
	rej := g.bridge.Reject(in, err)
	if !rej.Answer || bridge.ValidDeviceID(in.Device) != nil {
		return "", nil, false
	}
	code, msg := bridge.CodeBadRequest, err.Error()
	var be *bridge.Error
	if errors.As(err, &be) {
		code, msg = be.Code, be.Message
	}
	return "devices/" + in.Device + "/errors", bridge.ErrorAnswer(code, msg, in.SourceTopic), true
}

// mqttStoreError is the rejection of a payload the bridge refused (an
// *bridge.Error, kept as is) or the hub could not store (CodeInternal).
func mqttStoreError(err error) error {
	var be *bridge.Error
	if errors.As(err, &be) {
		return be
	}
	return &bridge.Error{Code: bridge.CodeInternal, Message: "reading not stored: " + err.Error()}
}

// mqttForbidden is the rejection of a publish outside the device's own
// topics.
func mqttForbidden(device, topic string) error {
	return &bridge.Error{Code: bridge.CodeForbidden,
		Message: fmt.Sprintf("device %q may publish only under devices/%s/, not to %q", device, device, topic)}
}

// statusOffline applies a status "offline" for device from a source that
// does not hold the device's session (external broker, another
// connection): the device's current session goes offline with reason will.
func statusOffline(live mqttPresence, device string) {
	if session, online := live.Session(device); online {
		live.Disconnect(device, session, bridge.ReasonWill)
	}
}

// ignoreResult is the done of QoS 0 telemetry: nobody waits for it.
func ignoreResult(bridge.Result) {}

// ---------------------------------------------------------------------------
// Embedded broker.

// BrokerConfig configures the embedded MQTT broker.
type BrokerConfig struct {
	// Addr is the TCP listen address. Default "127.0.0.1:1883"; port 0
	// picks a free port (see Broker.Addr).
	Addr string
	// TLS, when set, makes the listener MQTTS. Default nil: plain TCP.
	TLS *tls.Config
	// Bridge receives readings and rejections (*bridge.Bridge). Required.
	Bridge mqttIngester
	// Liveness tracks device presence (*Liveness). Required.
	Liveness mqttPresence
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
	// Logger receives the broker's logs. Default slog.Default().
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
	case c.Liveness == nil:
		return c, fmt.Errorf("%w: Liveness is required", ErrInvalidConfig)
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
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Metrics = metrics.OrNew(c.Metrics)
	return c, nil
}

// Broker is telehub's embedded MQTT broker: a mochi-mqtt server whose hook
// turns device publishes into readings, presence and error answers.
//
// QoS 1 and 2 publishes are acknowledged only after the bridge reports the
// reading durably stored. Rejected payloads are answered on
// devices/{id}/errors and never cost the device its connection; a packet
// larger than the max payload plus a small margin for the topic does, as
// MQTT allows.
type Broker struct {
	cfg     BrokerConfig
	server  *mqtt.Server
	hook    *brokerHook
	ln      *mqttListener
	closing chan struct{}

	mu      sync.Mutex
	started bool
	closed  bool
}

// NewBroker builds the broker and binds its listener; it does not accept
// connections before Serve.
func NewBroker(cfg BrokerConfig) (*Broker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	maxPacket := cfg.MaxPayload + mqttPacketOverhead
	log := cfg.Logger
	server := mqtt.New(&mqtt.Options{
		InlineClient:           true,
		Capabilities:           mqttCapabilities(cfg.Limits, uint32(maxPacket)),
		Logger:                 newMQTTLogger(log, time.Now),
		SysTopicResendInterval: mqttSysInterval,
	})
	b := &Broker{cfg: cfg, server: server, closing: make(chan struct{})}
	b.hook = newBrokerHook(cfg, server, b.closing, log)
	if err := server.AddHook(b.hook, nil); err != nil {
		return nil, fmt.Errorf("mqtt hook: %w", err)
	}
	b.ln = newMQTTListener(cfg.Addr, cfg.TLS, cfg.ConnectTimeout, log)
	b.ln.maxPacket = maxPacket
	if err := server.AddListener(b.ln); err != nil {
		return nil, fmt.Errorf("mqtt listen on %s: %w", cfg.Addr, err)
	}
	return b, nil
}

// Addr returns the address the broker listens on, with port 0 resolved.
func (b *Broker) Addr() net.Addr { return b.ln.ln.Addr() }

// Serve starts accepting connections and returns at once.
func (b *Broker) Serve() error {
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

// Close disconnects every client, releases publishes waiting for their
// commit unacknowledged (the devices resend them), closes the listener and
// waits for the connection goroutines. It is safe to call more than once.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	close(b.closing)
	if err := b.server.Close(); err != nil {
		return fmt.Errorf("mqtt close: %w", err)
	}
	return nil
}

// ---------------------------------------------------------------------------
// The hook.

// mqttConn is the hook's state of one client connection. Its fields other
// than replaced are used only on the connection's own goroutine.
type mqttConn struct {
	// device is the device the connection belongs to: the username with
	// credentials, else the device of its first publish; "" until known.
	device string
	// live is set while the connection holds the device's current liveness
	// session.
	live    bool
	session uint64
	// lastHeard is when the connection last reported a sign of life.
	lastHeard time.Time
	// counted is set once the connection is counted in DevicesConnected.
	counted bool
	// replaced is set when a new connection with the same client id took
	// the session over: this one's will and disconnect no longer speak for
	// the device.
	replaced atomic.Bool
	// ack and subscribing are the state of the SUBSCRIBE or UNSUBSCRIBE
	// being handled (mqtt_compat.go); subscribing is read by deliveries to
	// the client from other goroutines.
	ack         mqttAckState
	subscribing atomic.Bool
}

// commitWait is how a QoS 1 publish waits for its commit; pooled.
type commitWait struct {
	ch   chan bridge.Result // capacity 1: done never blocks
	done func(bridge.Result)
}

func newCommitWait() *commitWait {
	w := &commitWait{ch: make(chan bridge.Result, 1)}
	w.done = func(r bridge.Result) { w.ch <- r }
	return w
}

// brokerHook is the mochi hook that connects the broker to the bridge and
// the liveness engine. mochi calls it from each client's goroutine; the
// state it shares across clients is conns (sync.Map) and byID (mu).
type brokerHook struct {
	mqtt.HookBase
	ingest    mqttIngest
	live      mqttPresence
	auth      func(username, password string) bool
	server    *mqtt.Server
	closing   <-chan struct{}
	log       *slog.Logger
	connected prometheus.Gauge
	dropped   prometheus.Counter
	waits     sync.Pool
	limits    BrokerLimits
	maxPacket uint32
	queues    *mqttQueues
	retained  *mqttRetained
	// dropLog is mochi's logger: one line per kind of warning at most
	// every mqttLogEvery.
	dropLog *slog.Logger

	conns sync.Map // *mqtt.Client -> *mqttConn
	mu    sync.Mutex
	byID  map[string]*mqttConn // client id -> its current connection
	// parked holds the sessions that outlived their connection, with
	// when it ended (mqtt_limits_hook.go).
	parked map[*mqtt.Client]time.Time
}

func newBrokerHook(cfg BrokerConfig, server *mqtt.Server, closing <-chan struct{}, log *slog.Logger) *brokerHook {
	h := &brokerHook{
		ingest:    mqttIngest{bridge: cfg.Bridge, maxPayload: cfg.MaxPayload},
		live:      cfg.Liveness,
		auth:      cfg.Authenticate,
		server:    server,
		closing:   closing,
		log:       log,
		connected: cfg.Metrics.DevicesConnected.WithLabelValues(bridge.TransportMQTT),
		dropped:   cfg.Metrics.MQTTDropped,
		waits:     sync.Pool{New: func() any { return newCommitWait() }},
		byID:      make(map[string]*mqttConn),
		parked:    make(map[*mqtt.Client]time.Time),
		limits:    cfg.Limits,
		maxPacket: uint32(cfg.MaxPayload + mqttPacketOverhead),
		retained:  newMQTTRetained(cfg.Limits),
		dropLog:   server.Log,
	}
	h.queues = &mqttQueues{limits: cfg.Limits}
	return h
}

// ID names the hook in mochi's logs.
func (h *brokerHook) ID() string { return "telehub" }

// Provides lists the mochi events the hook handles.
func (h *brokerHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablish,
		mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnPacketRead,
		mqtt.OnPublish, mqtt.OnPublishDropped, mqtt.OnWillSent,
		mqtt.OnConnect, mqtt.OnPacketEncode, mqtt.OnWill, mqtt.OnRetainMessage,
		mqtt.OnRetainedExpired, mqtt.OnQosDropped, mqtt.OnClientExpired:
		return true
	}
	return false
}

// OnConnectAuthenticate admits any client when credentials are off. With
// credentials, the username must be a valid device id whose token is the
// password, and a will, if any, must be under the device's own topics.
func (h *brokerHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if h.auth == nil {
		return true
	}
	device := string(cl.Properties.Username)
	if bridge.ValidDeviceID(device) != nil || !h.auth(device, string(pk.Connect.Password)) {
		h.log.Debug("mqtt client refused: bad credentials", "client", cl.ID, "remote", cl.Net.Remote)
		return false
	}
	if pk.Connect.WillFlag {
		if r, _ := parseDeviceTopic(pk.Connect.WillTopic); r.device != device {
			h.log.Debug("mqtt client refused: will outside its device's topics", "device", device,
				"topic", pk.Connect.WillTopic)
			return false
		}
	}
	return true
}

// OnACLCheck allows every publish (OnPublish answers forbidden ones) and,
// with credentials, subscriptions and deliveries only under the device's
// own topics. A delivery to a session over its limits is refused.
func (h *brokerHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if write || cl.Net.Inline {
		return true
	}
	if h.auth != nil && !strings.HasPrefix(topic, "devices/"+string(cl.Properties.Username)+"/") {
		return false
	}
	return h.subscribing(cl) || h.deliver(cl)
}

// OnSessionEstablish runs before a new connection takes over the session
// of an older one with the same client id: the older one is marked
// replaced first, so that its will and disconnect cannot mark the device
// offline however the two connections' goroutines interleave.
func (h *brokerHook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	h.makeRoom(cl)
	h.mu.Lock()
	if old := h.byID[cl.ID]; old != nil {
		old.replaced.Store(true)
	}
	h.mu.Unlock()
}

// OnSessionEstablished registers the connection; with credentials it is
// the device's from now on (presence reason connect).
func (h *brokerHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	c := &mqttConn{}
	if h.auth != nil {
		h.bind(c, string(cl.Properties.Username), bridge.ReasonConnect)
	}
	h.conns.Store(cl, c)
	h.mu.Lock()
	h.byID[cl.ID] = c
	h.mu.Unlock()
}

// OnPacketRead counts every packet of a connection that holds its device's
// session (PINGREQ included) as a sign of life, and adapts SUBSCRIBE and
// UNSUBSCRIBE for mochi (compatRead).
func (h *brokerHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if v, ok := h.conns.Load(cl); ok {
		c := v.(*mqttConn)
		if c.live {
			h.heard(c, time.Now())
		}
		pk = h.compatRead(cl, c, pk)
	}
	return pk, nil
}

// heard records a sign of life of live connection c. Usually that is one
// Liveness.Heard. After a pause of mqttRecheck or more, the device may
// have timed out meanwhile, so the connection first checks that it still
// holds the device's session: if the device went offline, the connection
// takes a new session (reason message) that its disconnect or will can
// end later; if another connection took the device over, this one no
// longer speaks for it.
func (h *brokerHook) heard(c *mqttConn, now time.Time) {
	gap := now.Sub(c.lastHeard)
	c.lastHeard = now
	if gap < mqttRecheck {
		h.live.Heard(c.device, bridge.TransportMQTT)
		return
	}
	switch session, online := h.live.Session(c.device); {
	case !online:
		h.bind(c, c.device, bridge.ReasonMessage)
	case session != c.session:
		c.live = false
	default:
		h.live.Heard(c.device, bridge.TransportMQTT)
	}
}

// OnDisconnect marks the device offline (reason disconnect) unless the
// connection no longer holds the device's session: it went offline by its
// will or a status "offline", another connection took its session over,
// or a delayed will is pending.
func (h *brokerHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	h.sessionEnded(cl, expire)
	v, ok := h.conns.LoadAndDelete(cl)
	if !ok {
		return
	}
	c := v.(*mqttConn)
	h.mu.Lock()
	if h.byID[cl.ID] == c {
		delete(h.byID, cl.ID)
	}
	h.mu.Unlock()
	if c.counted {
		h.connected.Dec()
	}
	if !c.live || c.replaced.Load() || cl.IsTakenOver() || delayedOfflineWill(cl, c.device) {
		return
	}
	c.live = false
	h.live.Disconnect(c.device, c.session, bridge.ReasonDisconnect)
}

// delayedOfflineWill reports whether cl has an MQTT 5 will with a delay,
// still unsent, that will set device offline. The will, or else the device
// timeout, then decides when the device goes offline.
func delayedOfflineWill(cl *mqtt.Client, device string) bool {
	will := &cl.Properties.Will
	if atomic.LoadUint32(&will.Flag) == 0 || will.WillDelayInterval == 0 {
		return false
	}
	r, err := routeMQTT(will.TopicName, will.Payload, len(will.Payload))
	return err == nil && r.device == device && r.wentOffline()
}

// OnPublishDropped counts messages mochi dropped for a client whose
// outbound queue was full.
func (h *brokerHook) OnPublishDropped(*mqtt.Client, packets.Packet) { h.dropped.Inc() }

// OnWillSent handles a will the broker published for a client that
// dropped. mochi publishes wills straight to subscribers, bypassing
// OnPublish, and before it calls OnDisconnect for the same drop: a status
// "offline" will therefore marks the device offline with reason will, and
// OnDisconnect then finds the connection no longer live. Other wills are
// ingested like QoS 0 publishes.
func (h *brokerHook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	var c *mqttConn
	if v, ok := h.conns.Load(cl); ok {
		c = v.(*mqttConn)
	}
	_, _ = h.handle(c, pk, true)
}

// OnPublish ingests a device publish. It returns once the publish is dealt
// with: for QoS 1 and 2 telemetry, after the commit, so that mochi's
// PUBACK (sent when the hook returns) means "durably stored".
func (h *brokerHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil // the hub's own answers
	}
	c := &mqttConn{}
	if v, ok := h.conns.Load(cl); ok {
		c = v.(*mqttConn)
	}
	pk = h.limitRetain(pk)
	pkx, err := h.handle(c, pk, false)
	return pkx, ackCode(&pk, err)
}

// handle is OnPublish and OnWillSent: route, presence, then store or
// reject. c is nil for a will sent after its connection ended. A refused
// publish returns an *mqttRefusal (see ackCode); ErrRejectPacket leaves a
// publish unacknowledged (not stored). An empty retained publish clears
// the topic's retained message and is no reading.
func (h *brokerHook) handle(c *mqttConn, pk packets.Packet, will bool) (packets.Packet, error) {
	now := time.Now()
	topic := pk.TopicName
	r, err := routeMQTT(topic, pk.Payload, h.ingest.maxPayload)
	owner := ""
	if c != nil {
		owner = c.device
	}
	switch {
	case h.auth != nil && !will && r.device != owner:
		forbidden := mqttForbidden(owner, topic)
		h.reject(mqttInput(owner, topic, now), forbidden)
		return pk, &mqttRefusal{err: forbidden}
	case r.kind == mqttForeign || r.kind == mqttAnswer:
		return pk, nil
	case pk.FixedHeader.Retain && len(pk.Payload) == 0:
		return pk, nil
	}
	if will {
		h.willPresence(c, &r, err)
	} else {
		h.presence(c, &r, err)
	}
	if err != nil {
		h.reject(mqttInput(rejectDevice(&r, owner), topic, now), err)
		return pk, &mqttRefusal{err: err, badTopic: r.kind == mqttInvalid}
	}
	if !r.stores() {
		return pk, nil
	}
	in := mqttInput(r.device, topic, now)
	if will || pk.FixedHeader.Qos == 0 {
		return pk, h.storeAsync(in, r.payload)
	}
	return pk, h.storeAndWait(in, r.payload)
}

// rejectDevice is the device a rejected publish is recorded for: the one
// its topic names, else the connection's device, else the invalid id as
// published (the bridge makes no topic from it).
func rejectDevice(r *mqttRoute, owner string) string {
	switch {
	case r.device != "":
		return r.device
	case owner != "":
		return owner
	}
	return r.rawID
}

// presence applies the liveness effect of a publish from connection c.
func (h *brokerHook) presence(c *mqttConn, r *mqttRoute, err error) {
	if r.device == "" {
		return
	}
	offline := err == nil && r.wentOffline()
	switch {
	case c.live && c.device == r.device:
		// Heard in OnPacketRead already.
		if offline {
			h.offline(c)
		}
	case offline:
		statusOffline(h.live, r.device)
	case !c.live && (c.device == "" || c.device == r.device):
		h.bind(c, r.device, bridge.ReasonMessage)
	default:
		// Credentials off: a connection publishing for another device.
		h.live.Heard(r.device, bridge.TransportMQTT)
	}
}

// willPresence applies the liveness effect of a will: only a status
// "offline" has one.
func (h *brokerHook) willPresence(c *mqttConn, r *mqttRoute, err error) {
	switch {
	case err != nil || !r.wentOffline() || c != nil && c.replaced.Load():
	case c != nil && c.live && c.device == r.device:
		h.offline(c)
	default:
		statusOffline(h.live, r.device)
	}
}

// bind makes connection c hold a new session of device.
func (h *brokerHook) bind(c *mqttConn, device, reason string) {
	c.device = device
	c.session = h.live.Connect(device, bridge.TransportMQTT, reason)
	c.live = true
	c.lastHeard = time.Now()
	if !c.counted {
		c.counted = true
		h.connected.Inc()
	}
}

// offline ends connection c's session with reason will.
func (h *brokerHook) offline(c *mqttConn) {
	c.live = false
	h.live.Disconnect(c.device, c.session, bridge.ReasonWill)
}

// storeAsync submits QoS 0 telemetry without waiting for its commit.
func (h *brokerHook) storeAsync(in bridge.Input, p bridge.Payload) error {
	if err := h.ingest.bridge.Telemetry(in, p, ignoreResult); err != nil {
		refused := mqttStoreError(err)
		h.reject(in, refused)
		return &mqttRefusal{err: refused}
	}
	return nil
}

// storeAndWait submits QoS 1 telemetry and waits for its commit, or for
// the broker to close. A payload the bridge refuses is acknowledged like
// any rejected payload; one that could not be stored, or whose wait was
// cut short, stays unacknowledged, and the device resends it.
func (h *brokerHook) storeAndWait(in bridge.Input, p bridge.Payload) error {
	w := h.waits.Get().(*commitWait)
	if err := h.ingest.bridge.Telemetry(in, p, w.done); err != nil {
		// done is never called; w is left to the garbage collector all the same.
		refused := mqttStoreError(err)
		h.reject(in, refused)
		return &mqttRefusal{err: refused, resend: !acknowledgeRefusal(err)}
	}
	select {
	case res := <-w.ch:
		h.waits.Put(w)
		if res.Err != nil {
			h.reject(in, mqttStoreError(res.Err))
			return packets.ErrRejectPacket
		}
		return nil
	case <-h.closing:
		return packets.ErrRejectPacket // w is dropped: its done may still come
	}
}

// acknowledgeRefusal reports whether a QoS 1 publish the bridge refused is
// acknowledged all the same: yes for a payload that can never be stored
// (bad JSON, bad names), which the device must not resend; no for a
// refusal that passes (over the rate limit) or a store failure, which the
// device should resend later.
func acknowledgeRefusal(err error) bool {
	var e *bridge.Error
	return errors.As(err, &e) && e.Code != bridge.CodeRateLimited
}

// reject records a rejection and answers the device through the inline
// client. Server.Publish holds no lock of mochi's while it runs the hooks
// and only queues to each subscriber without blocking (dropping when a
// queue is full), so calling it from inside OnPublish cannot deadlock.
func (h *brokerHook) reject(in bridge.Input, err error) {
	topic, body, ok := h.ingest.reject(in, err)
	if !ok {
		return
	}
	if perr := h.server.Publish(topic, body, false, 0); perr != nil {
		h.log.Debug("mqtt error answer not published", "device", in.Device, "error", perr)
	}
}

// ---------------------------------------------------------------------------
// The listener.

// mqttListener is the broker's TCP (or TLS) listener. Unlike mochi's own,
// it bounds the wait for a new connection's CONNECT packet, and on Close
// closes every connection it accepted and waits for their goroutines.
type mqttListener struct {
	id             string
	addr           string
	tls            *tls.Config
	connectTimeout time.Duration
	// maxPacket, when set, is the largest packet a client may send
	// (mqttLimitedConn).
	maxPacket int
	log       *slog.Logger
	ln        net.Listener
	done      chan struct{}

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup // Serve and one goroutine per connection
}

func newMQTTListener(addr string, tlsConf *tls.Config, connectTimeout time.Duration, log *slog.Logger) *mqttListener {
	return &mqttListener{
		id: "telehub", addr: addr, tls: tlsConf, connectTimeout: connectTimeout, log: log,
		done: make(chan struct{}), conns: make(map[net.Conn]struct{}),
	}
}

// ID returns the listener's id.
func (l *mqttListener) ID() string { return l.id }

// Address returns the bound address.
func (l *mqttListener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.addr
}

// Protocol returns "tcp" or "tls".
func (l *mqttListener) Protocol() string {
	if l.tls != nil {
		return "tls"
	}
	return "tcp"
}

// Init binds the address.
func (l *mqttListener) Init(*slog.Logger) error {
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return err
	}
	if l.tls != nil {
		ln = tls.NewListener(ln, l.tls)
	}
	l.ln = ln
	return nil
}

// Serve accepts connections until Close, handing each to establish on a
// goroutine of its own.
func (l *mqttListener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.wg.Add(1)
	l.mu.Unlock()
	defer l.wg.Done()
	var delay time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if delay = acceptBackoff(delay); !l.pause(err, delay) {
				return
			}
			continue
		}
		delay = 0
		if !l.track(conn) {
			_ = conn.Close()
			return
		}
		go l.serveConn(establish, conn)
	}
}

// acceptBackoff returns the wait after a failed Accept: 5ms doubling to 1s.
func acceptBackoff(prev time.Duration) time.Duration {
	if prev == 0 {
		return 5 * time.Millisecond
	}
	return min(2*prev, time.Second)
}

// pause waits after an Accept error; false when the listener is closed.
func (l *mqttListener) pause(err error, delay time.Duration) bool {
	select {
	case <-l.done:
		return false
	default:
	}
	l.log.Warn("mqtt accept failed", "error", err, "retry_in", delay)
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-l.done:
		return false
	case <-t.C:
		return true
	}
}

// track registers an accepted connection; false when the listener closed.
func (l *mqttListener) track(conn net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.conns[conn] = struct{}{}
	l.wg.Add(1)
	return true
}

func (l *mqttListener) serveConn(establish listeners.EstablishFn, conn net.Conn) {
	defer l.wg.Done()
	defer func() {
		l.mu.Lock()
		delete(l.conns, conn)
		l.mu.Unlock()
	}()
	// mochi replaces this deadline with the client's keepalive once the
	// CONNECT packet is read.
	_ = conn.SetReadDeadline(time.Now().Add(l.connectTimeout))
	client := conn
	if l.maxPacket > 0 {
		client = newMQTTLimitedConn(conn, l.maxPacket)
	}
	if err := establish(l.id, client); err != nil {
		l.log.Debug("mqtt connection ended", "remote", conn.RemoteAddr().String(), "error", err)
	}
}

// Close stops accepting, lets mochi disconnect its clients, closes every
// connection still open (those that never sent CONNECT included) and
// waits for all of the listener's goroutines.
func (l *mqttListener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	close(l.done)
	conns := make([]net.Conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()

	deadline := time.Now().Add(time.Second)
	for _, c := range conns {
		_ = c.SetWriteDeadline(deadline) // a stuck peer cannot hold up the DISCONNECT
	}
	closeClients(l.id)
	_ = l.ln.Close()
	for _, c := range conns {
		_ = c.Close()
	}
	l.wg.Wait()
}
