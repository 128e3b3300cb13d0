package devices

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/topic"
)

// mqttConn is the hook's state of one client connection. Its fields other
// than owner and replaced are used only on the connection's own goroutine.
type mqttConn struct {
	// device is the device the connection belongs to: the username with
	// credentials, else the device of its first publish; "" until known.
	device string
	// owner is device, once known, for other goroutines (CloseDevice).
	owner atomic.Pointer[string]
	// live is set while the connection holds the device's current presence
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
	// pacer is the read goroutine's timer while the rate limit slows the
	// client (pace).
	pacer *time.Timer
	// cl is the connection's client, and acks its QoS 1 publishes waiting
	// for their commits (mqtt_acks.go), made on the first one.
	cl   *mqtt.Client
	acks *mqttAcks
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
// the presence engine. mochi calls it from each client's goroutine; the
// state it shares across clients is conns (sync.Map) and byID (mu).
type brokerHook struct {
	mqtt.HookBase
	ingest    mqttIngest
	live      Presence
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

	// commands receives command results and confirmations; nil when
	// commands are off. routes holds the subscriptions to commands kept
	// outside mochi (mqtt_command_routes.go). inflight maps each client's
	// QoS 1 command publishes, by packet id, to their command ids.
	commands   Commander
	routes     *commandRoutes
	inflightMu sync.Mutex
	inflight   map[*mqtt.Client]map[uint16]string

	// receiveMax bounds each connection's publishes waiting for their
	// commits; counts are the server's packet and byte counters that the
	// PUBACKs written by mqttAcks add to.
	receiveMax int
	counts     mqttWriteCounts

	conns sync.Map // *mqtt.Client -> *mqttConn
	mu    sync.Mutex
	byID  map[string]*mqttConn // client id -> its current connection
	// takenOver reports whether a newer connection took a client's
	// session over while it was connected (mqttSessions).
	takenOver func(*mqtt.Client) bool
	// delivering starts a client's writer before mochi queues a message
	// for it, and connacked reports whether a client's CONNACK went out
	// (mqttSessions).
	delivering func(*mqtt.Client)
	connacked  func(*mqtt.Client) bool
	// inflightLock returns the lock a goroutine other than a connected
	// client's reader holds while it writes the client's in-flight
	// messages; nil for a client without a connection (mqttSessions).
	inflightLock func(*mqtt.Client) *sync.Mutex
	// parked holds the sessions that outlived their connection, with
	// when it ended (mqtt_limits_hook.go).
	parked map[*mqtt.Client]time.Time
}

func newBrokerHook(cfg BrokerConfig, server *mqtt.Server, closing <-chan struct{}, log *slog.Logger) *brokerHook {
	h := &brokerHook{
		ingest:    mqttIngest{bridge: cfg.Bridge, maxPayload: cfg.MaxPayload},
		live:      cfg.Presence,
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
		queues:    &mqttQueues{limits: cfg.Limits},
		retained:  newMQTTRetained(cfg.Limits),
		dropLog:   server.Log,
		commands:  cfg.Commands,
		routes:    newCommandRoutes(log, cfg.Limits.MaxQueued),
		inflight:  make(map[*mqtt.Client]map[uint16]string),

		receiveMax: cfg.Limits.ReceiveMaximum,
		counts:     mqttWriteCounts{packets: &server.Info.PacketsSent, bytes: &server.Info.BytesSent},
	}
	h.routes.prepare = h.prepareCommand
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
		mqtt.OnRetainedExpired, mqtt.OnQosDropped, mqtt.OnClientExpired,
		mqtt.OnSubscribed, mqtt.OnQosPublish:
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
	if topic.ValidDeviceID(device) != nil || !h.auth(device, string(pk.Connect.Password)) {
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
// own topics. A delivery to a session over its limits is refused. A
// subscription or delivery allowed starts the client's writer.
func (h *brokerHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if write || cl.Net.Inline {
		return true
	}
	if h.auth != nil && !strings.HasPrefix(topic, "devices/"+string(cl.Properties.Username)+"/") {
		return false
	}
	if !h.subscribing(cl) && !h.deliver(cl) {
		return false
	}
	if h.delivering != nil {
		h.delivering(cl)
	}
	return true
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
// the device's from now on (presence reason connect). It runs after the
// CONNACK went out, so a newer connection with the same client id may
// have taken the session over already: such a connection, stopped, is
// not registered and takes no presence session, which would otherwise be
// later than its successor's.
func (h *brokerHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Closed() {
		return
	}
	c := &mqttConn{cl: cl}
	if h.auth != nil {
		h.bind(c, string(cl.Properties.Username), bridge.ReasonConnect)
	}
	h.conns.Store(cl, c)
	h.mu.Lock()
	h.byID[cl.ID] = c
	h.mu.Unlock()
}

// OnPacketRead counts every packet of a connection that holds its device's
// session (PINGREQ included) as a sign of life, confirms the command a
// PUBACK answers (confirmCommand), and adapts SUBSCRIBE and UNSUBSCRIBE
// for mochi (compatRead).
func (h *brokerHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if v, ok := h.conns.Load(cl); ok {
		c := v.(*mqttConn)
		if c.live {
			h.heard(c, time.Now())
		}
		if pk.FixedHeader.Type == packets.Puback {
			h.confirmCommand(cl, pk.PacketID)
		}
		if pk.FixedHeader.Type == packets.Disconnect && c.acks != nil {
			c.acks.drain(h.closing) // a clean disconnect gets its PUBACKs first
		}
		pk = h.compatRead(cl, c, pk)
	}
	return pk, nil
}

// heard records a sign of life of live connection c. Usually that is one
// Presence.Heard. After a pause of mqttRecheck or more, the device may
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
	h.forgetInflight(cl)
	v, ok := h.conns.LoadAndDelete(cl)
	if !ok {
		return
	}
	c := v.(*mqttConn)
	if c.acks != nil {
		c.acks.close()
	}
	h.mu.Lock()
	if h.byID[cl.ID] == c {
		delete(h.byID, cl.ID)
	}
	h.mu.Unlock()
	if c.counted {
		h.connected.Dec()
	}
	if !c.live || c.replaced.Load() || h.isTakenOver(cl) || delayedOfflineWill(cl, c.device) {
		return
	}
	c.live = false
	h.live.Disconnect(c.device, c.session, bridge.ReasonDisconnect)
}

// isTakenOver reports whether a newer connection took cl's session over
// while cl was connected.
func (h *brokerHook) isTakenOver(cl *mqtt.Client) bool {
	return h.takenOver != nil && h.takenOver(cl)
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

// OnPublish ingests a device publish. QoS 1 telemetry is submitted and
// acknowledged later, from its commit (storeDeferred); mochi is told to
// answer nothing. Any other publish returns once it is dealt with (QoS 2
// telemetry after its commit), and mochi's answer, written when the hook
// returns, comes after the PUBACKs of every earlier publish: the broker
// acknowledges a client's publishes in the order it sent them.
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
	if errors.Is(err, errAckDeferred) {
		return pk, packets.ErrRejectPacket
	}
	err = ackCode(&pk, err)
	if pk.FixedHeader.Qos > 0 && c.acks != nil && !errors.Is(err, packets.ErrRejectPacket) && !c.acks.drain(h.closing) {
		return pk, packets.ErrRejectPacket // closing: unacknowledged, resent
	}
	if pk.FixedHeader.Qos > 0 {
		refreshWriteDeadline(cl) // mochi answers next, after waits that may have outlasted the keepalive
	}
	return pkx, err
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
	case pk.FixedHeader.Retain && len(pk.Payload) == 0 && !isCommandsTopic(topic):
		return pk, nil // clears the retained message (a commands topic has none: refused below)
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
	if r.kind == mqttCommandResult || r.kind == mqttCommandAck {
		return pk, h.commandResult(mqttInput(r.device, topic, now), &r)
	}
	if !r.stores() {
		return pk, nil
	}
	in := mqttInput(r.device, topic, now)
	if !will && !h.pace(c, &in) {
		return pk, packets.ErrRejectPacket // shutting down: not stored, a QoS 1 publish is resent
	}
	switch {
	case will || pk.FixedHeader.Qos == 0:
		return pk, h.storeAsync(in, r.payload)
	case h.canDefer(c, &pk):
		return pk, h.storeDeferred(c, pk.PacketID, in, r.payload)
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

// presence applies the presence effect of a publish from connection c.
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

// willPresence applies the presence effect of a will: only a status
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
	c.owner.Store(&device)
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

// pace slows a publisher over its device's rate limit: OnPublish runs on
// the client's own read goroutine, so waiting here delays reading only
// that client's next packet, and none of its readings is refused for the
// rate. The wait is bounded (by the bridge) and ends when the broker
// closes; pace then returns false. in is marked Paced.
func (h *brokerHook) pace(c *mqttConn, in *bridge.Input) bool {
	if d := h.ingest.bridge.Pace(in.Device, in.Received); d > 0 && !pause(&c.pacer, d, h.closing, nil) {
		return false
	}
	in.Paced = true
	return true
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
