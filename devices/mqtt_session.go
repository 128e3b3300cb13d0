package devices

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// mqttSessions runs the embedded broker's client connections in place of
// mochi's attachClient, through mochi's exported parts: it reads the
// CONNECT and answers it, takes an older session over, hands every later
// packet to mochi (InjectPacket), sends the will and ends the session as
// mochi does.
//
// It exists for memory. mochi reads each client on a goroutine that stays
// parked under deep frames for as long as the client is connected
// (16 KiB of stack) and starts a writer goroutine per client (4 KiB)
// that only a client with subscriptions needs. Here, on Unix, a plain TCP
// connection is read without a goroutine of its own (mqtt_direct.go), and
// the writer starts with the client's first subscription. TLS connections,
// and every connection on other systems, are read on a goroutine of their
// own, as mochi reads them.
type mqttSessions struct {
	server *mqtt.Server
	hook   *brokerHook
	log    *slog.Logger
	wills  *mqttWills
	rounds roundPool
	// blocking reads every connection on a goroutine of its own, as TLS
	// connections are read; tests set it to run on both read paths.
	blocking bool

	// mu orders a session's arrival in the server's clients with an older
	// one's departure, so that an ending connection never removes its
	// successor nor leaves a delayed will behind it.
	mu   sync.Mutex
	live sync.Map // *mqtt.Client -> *mqttSession, until its end
}

func newMQTTSessions(server *mqtt.Server, hook *brokerHook, log *slog.Logger) *mqttSessions {
	m := &mqttSessions{server: server, hook: hook, log: log}
	m.wills = newMQTTWills(m.sendDelayedWill)
	hook.takenOver = m.isTakenOver
	hook.delivering = m.delivering
	hook.connacked = m.connacked
	hook.inflightLock = m.inflightLock
	return m
}

// mqttSession is one connection's session.
type mqttSession struct {
	m  *mqttSessions
	cl *mqtt.Client
	// release tells the listener the connection is done with.
	release func()
	// counted is set once the client counts in ClientsConnected.
	counted bool
	// writing is set once mochi's writer for the client runs. Nothing is
	// written to the client before its CONNACK: a writer asked for before
	// (early) starts after it (connacked).
	writing   atomic.Bool
	early     atomic.Bool
	connacked atomic.Bool
	// takenOver is set when a newer connection with the same client id
	// took the session over: takenResumed when it carries the session on,
	// takenClean when it started clean.
	takenOver atomic.Int32
	// noWill is set, under mqttSessions.mu, when the session is to end
	// without its will: its device was deleted.
	noWill atomic.Bool
	// inflight is held while a packet of the client is handed to mochi,
	// and by any other goroutine of ours that writes the client's
	// in-flight messages (hook.inflightLock). After each packet mochi's
	// Inflight.NextImmediate read-locks them twice, nested: a write that
	// came between the two would wait for the first and hold up the
	// second, and the reader and the writer would wait for good.
	inflight sync.Mutex
}

// How a session was taken over (mqttSession.takenOver).
const (
	takenResumed = 1 + iota
	takenClean
)

// serve runs the session of conn, a connection the listener accepted and
// admitted, whose packets may be at most maxPacket bytes (0: no limit of
// ours). release is called once the connection is done with; serve may
// return before that.
func (m *mqttSessions) serve(listener string, conn net.Conn, maxPacket int, release func()) {
	s := &mqttSession{m: m, release: release}
	var direct mqttReader
	if !m.blocking {
		direct = newMQTTDirect(s, conn)
	}
	var inner net.Conn
	if direct != nil {
		inner = direct.conn()
	} else {
		inner = &bufferedConn{Conn: conn, r: bufio.NewReaderSize(conn, mqttReadBufferSize)}
	}
	client := inner
	if maxPacket > 0 {
		client = newMQTTLimitedConn(inner, maxPacket)
	}
	s.cl = m.server.NewClient(client, listener, "", false)
	m.server.Listeners.ClientsWg.Add(1)
	m.live.Store(s.cl, s)

	if direct != nil {
		if err := direct.connect(maxPacket); err != nil {
			s.fail(fmt.Errorf("read connection: %w", err))
			return
		}
	}
	if err := s.open(listener); err != nil {
		s.fail(err)
		return
	}
	if direct != nil {
		direct.start()
		return
	}
	s.end(s.cl.Read(s.receive))
}

// open reads the CONNECT, answers it and sets the session up.
func (s *mqttSession) open(listener string) error {
	cl, srv, h := s.cl, s.m.server, s.m.hook
	var fh packets.FixedHeader
	if err := cl.ReadFixedHeader(&fh); err != nil {
		return fmt.Errorf("read connection: %w", err)
	}
	if fh.Type != packets.Connect {
		return fmt.Errorf("read connection: %w", packets.ErrProtocolViolationRequireFirstConnect)
	}
	pk, err := cl.ReadPacket(&fh)
	if err != nil {
		return fmt.Errorf("read connection: %w", err)
	}
	cl.ParseConnect(listener, pk)
	if atomic.LoadInt64(&srv.Info.ClientsConnected) >= srv.Options.Capabilities.MaximumClients {
		code := packets.ErrServerBusy
		if cl.Properties.ProtocolVersion < 5 {
			code = packets.ErrServerUnavailable
		}
		_ = srv.SendConnack(cl, code, false, nil)
		return code
	}
	if code := validateConnect(srv.Options.Capabilities, cl, pk); code != packets.CodeSuccess {
		if code == packets.ErrMalformedWillTopic && cl.Properties.ProtocolVersion < 5 {
			return code // MQTT 3.1.1 has no code for it: the connection is closed unanswered
		}
		if err := srv.SendConnack(cl, code, false, nil); err != nil {
			return fmt.Errorf("refuse connection: %w", err)
		}
		return code
	}
	if err := h.OnConnect(cl, pk); err != nil {
		return err
	}
	refreshDeadline(cl)
	if !h.OnConnectAuthenticate(cl, pk) {
		if err := srv.SendConnack(cl, packets.ErrBadUsernameOrPassword, false, nil); err != nil {
			return fmt.Errorf("refuse connection: %w", err)
		}
		return packets.ErrBadUsernameOrPassword
	}
	atomic.AddInt64(&srv.Info.ClientsConnected, 1)
	s.counted = true

	h.OnSessionEstablish(cl, pk)
	s.m.mu.Lock()
	present, old := s.m.inherit(pk, cl)
	srv.Clients.Add(cl)
	s.m.wills.cancel(cl.ID) // the client is back before its delayed will
	s.m.mu.Unlock()
	if old != nil {
		s.m.disconnect(old)
	}
	if err := srv.SendConnack(cl, packets.CodeSuccess, present, nil); err != nil {
		return fmt.Errorf("ack connection: %w", err)
	}
	s.connacked.Store(true)
	if s.early.Load() {
		s.startWriter()
	}
	if present {
		if err := cl.ResendInflightMessages(true); err != nil {
			return fmt.Errorf("resend inflight: %w", err)
		}
	}
	h.OnSessionEstablished(cl, pk)
	return nil
}

// validateConnect checks a CONNECT against the broker's capabilities.
func validateConnect(caps *mqtt.Capabilities, cl *mqtt.Client, pk packets.Packet) packets.Code {
	if code := pk.ConnectValidate(); code != packets.CodeSuccess {
		return code
	}
	switch {
	case cl.Properties.ProtocolVersion < 5 && !pk.Connect.Clean && pk.Connect.ClientIdentifier == "":
		return packets.ErrUnspecifiedError // MQTT 3: a session needs a client id
	case cl.Properties.ProtocolVersion < caps.MinimumProtocolVersion:
		return packets.ErrUnsupportedProtocolVersion
	case cl.Properties.Will.Qos > caps.MaximumQos:
		return packets.ErrQosNotSupported
	case cl.Properties.Will.Retain && caps.RetainAvailable == 0:
		return packets.ErrRetainNotSupported
	case pk.Connect.WillFlag && strings.ContainsAny(pk.Connect.WillTopic, "+#"):
		return packets.ErrMalformedWillTopic // a will is published: its topic is a topic name
	}
	return packets.CodeSuccess
}

// refreshDeadline gives the client one and a half keepalives to send its
// next packet (no limit with keepalive 0).
func refreshDeadline(cl *mqtt.Client) {
	var deadline time.Time
	if ka := time.Duration(cl.State.Keepalive) * time.Second; ka > 0 {
		deadline = time.Now().Add(ka + ka/2)
	}
	_ = cl.Net.Conn.SetDeadline(deadline)
}

// refreshWriteDeadline gives a write one and a half keepalives from now,
// as refreshDeadline gives the client's next packet, leaving the read
// deadline alone. The answer to a publish whose commit outlasted the
// deadline set before it was read needs it.
func refreshWriteDeadline(cl *mqtt.Client) {
	if ka := time.Duration(cl.State.Keepalive) * time.Second; ka > 0 && cl.Net.Conn != nil {
		_ = cl.Net.Conn.SetWriteDeadline(time.Now().Add(ka + ka/2))
	}
}

// inherit takes the session of the client's id over from the client
// that holds it, if any, and reports whether the session is carried on (a
// clean start abandons it) and the client taken over, which the caller
// disconnects once m.mu is released (disconnect). m.mu must be held.
func (m *mqttSessions) inherit(pk packets.Packet, cl *mqtt.Client) (present bool, old *mqtt.Client) {
	srv := m.server
	old, ok := srv.Clients.Get(cl.ID)
	if !ok {
		if atomic.LoadInt64(&srv.Info.ClientsConnected) > atomic.LoadInt64(&srv.Info.ClientsMaximum) {
			atomic.AddInt64(&srv.Info.ClientsMaximum, 1)
		}
		return false, nil
	}
	if pk.Connect.Clean || (old.Properties.Clean && old.Properties.ProtocolVersion < 5) {
		m.hook.unsubscribeClient(old)
		old.ClearInflights() // lost with the session
		m.markTakenOver(old, takenClean)
		return false, old
	}
	m.markTakenOver(old, takenResumed)
	// Under the routes' lock no command is readied for old: those readied
	// before are in the messages cl takes, and later ones go to cl.
	m.hook.routes.moveSession(old, cl, func() {
		if old.State.Inflight.Len() > 0 {
			cl.State.Inflight = old.State.Inflight.Clone()
			if max := srv.Options.Capabilities.ReceiveMaximum; max != 0 {
				cl.State.Inflight.ResetReceiveQuota(int32(max))
				cl.State.Inflight.ResetSendQuota(int32(cl.Properties.Props.ReceiveMaximum))
			}
		}
		for filter, sub := range old.State.Subscriptions.GetAll() {
			if srv.Topics.Subscribe(cl.ID, sub) {
				atomic.AddInt64(&srv.Info.Subscriptions, 1)
			}
			cl.State.Subscriptions.Add(filter, sub)
			old.State.Subscriptions.Delete(filter) // the topic tree's entries are cl's now
		}
		for _, pk := range old.State.Inflight.GetAll(false) {
			old.State.Inflight.Delete(pk.PacketID) // moved to cl, not lost
		}
	})
	m.hook.forgetInflight(old) // cl sends old's command publishes again, and notes them
	return true, old
}

// markTakenOver records how old's session, if its connection is still
// running, was taken over.
func (m *mqttSessions) markTakenOver(old *mqtt.Client, how int32) {
	if v, ok := m.live.Load(old); ok {
		v.(*mqttSession).takenOver.Store(how)
	}
}

// disconnect tells a client whose session was taken over and closes its
// connection.
func (m *mqttSessions) disconnect(old *mqtt.Client) {
	disconnectClient(m.server, old, packets.ErrSessionTakenOver)
}

// disconnectClient sends cl a DISCONNECT with code (MQTT 5) and closes
// its connection. A client that does not read cannot hold the DISCONNECT
// up, nor a write stuck before it, for more than a second.
func disconnectClient(srv *mqtt.Server, cl *mqtt.Client, code packets.Code) {
	if cl.Net.Conn != nil {
		_ = cl.Net.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	}
	_ = srv.DisconnectClient(cl, code)
}

// delivering starts the writer of cl, a connected client mochi is about
// to queue a message for (or checks a subscription of), unless it runs.
func (m *mqttSessions) delivering(cl *mqtt.Client) {
	if v, ok := m.live.Load(cl); ok {
		v.(*mqttSession).startWriter()
	}
}

// connacked reports whether cl, a client with a connection, got its
// CONNACK; false for a session without one.
func (m *mqttSessions) connacked(cl *mqtt.Client) bool {
	v, ok := m.live.Load(cl)
	return ok && v.(*mqttSession).connacked.Load()
}

// takenOverHow returns how cl's session was taken over while cl was
// connected: 0 when it was not.
func (m *mqttSessions) takenOverHow(cl *mqtt.Client) int32 {
	if v, ok := m.live.Load(cl); ok {
		return v.(*mqttSession).takenOver.Load()
	}
	return 0
}

// isTakenOver reports whether a newer connection took cl's session over
// while cl was connected.
func (m *mqttSessions) isTakenOver(cl *mqtt.Client) bool {
	return m.takenOverHow(cl) != 0
}

// mqttReader reads a connection in place of a goroutine of its own
// (mqtt_direct.go).
type mqttReader interface {
	// conn is the connection mochi reads.
	conn() net.Conn
	// connect reads until the connection's first packet is whole, with
	// blocking reads, and hands it to mochi.
	connect(maxPacket int) error
	// start reads the packets after the first until the session ends.
	start()
}

// packet reads the packet the connection holds whole and hands it to
// mochi.
func (s *mqttSession) packet() error {
	var fh packets.FixedHeader
	if err := s.cl.ReadFixedHeader(&fh); err != nil {
		return err
	}
	pk, err := s.cl.ReadPacket(&fh)
	if err != nil {
		return err
	}
	return s.receive(s.cl, pk)
}

// receive hands a packet the client sent to mochi, as mochi's read loop
// does; an error ends the connection.
func (s *mqttSession) receive(cl *mqtt.Client, pk packets.Packet) error {
	srv := s.m.server
	var err error
	if pk.FixedHeader.Type == packets.Connect {
		// mochi would send the will itself, on a delay list of its own;
		// end sends it.
		err = packets.ErrProtocolViolationSecondConnect
	} else if handled, rerr := s.m.hook.routeCommands(cl, pk); handled {
		err = rerr
	} else if err = s.inject(pk); err == nil {
		uncount(srv, pk) // ReadPacket counted it already
	}
	if err == nil {
		if pk.FixedHeader.Type == packets.Disconnect {
			s.m.wills.cancel(cl.ID) // a clean disconnect drops a delayed will
		}
		return nil
	}
	var code packets.Code
	if errors.As(err, &code) && cl.Properties.ProtocolVersion == 5 && code.Code >= packets.ErrUnspecifiedError.Code {
		_ = srv.DisconnectClient(cl, code)
	}
	srv.Log.Warn("error processing packet", "error", err, "client", cl.ID, "listener", cl.Net.Listener,
		"type", packets.PacketNames[pk.FixedHeader.Type])
	return err
}

// inject hands pk to mochi's processing, as its read loop does, under
// s.inflight.
func (s *mqttSession) inject(pk packets.Packet) error {
	s.inflight.Lock()
	defer s.inflight.Unlock()
	return s.m.server.InjectPacket(s.cl, pk)
}

// inflightLock returns the lock of cl's session that orders writes of its
// in-flight messages with its packets' processing (mqttSession.inflight);
// nil when cl has no connection.
func (m *mqttSessions) inflightLock(cl *mqtt.Client) *sync.Mutex {
	if v, ok := m.live.Load(cl); ok {
		return &v.(*mqttSession).inflight
	}
	return nil
}

// uncount takes back what InjectPacket added to the server's counters
// for pk, which ReadPacket (or, for a will, nobody) counts.
func uncount(srv *mqtt.Server, pk packets.Packet) {
	atomic.AddInt64(&srv.Info.PacketsReceived, -1)
	if pk.FixedHeader.Type == packets.Publish {
		atomic.AddInt64(&srv.Info.MessagesReceived, -1)
	}
}

// startWriter starts mochi's writer of the client's outbound queue, once,
// or once the client's CONNACK went out: only messages to subscriptions
// go through it, and mochi checks the client's access (the hook's
// OnACLCheck, which calls delivering) before it queues one. A session
// taken over with its subscriptions gets messages before its CONNACK.
func (s *mqttSession) startWriter() {
	if !s.connacked.Load() {
		s.early.Store(true)
		if !s.connacked.Load() {
			return // open starts it
		}
	}
	if s.writing.CompareAndSwap(false, true) {
		go s.cl.WriteLoop() // ends when the client stops
	}
}

// end ends the session after its connection's reads ended with err (nil
// for a client stopped between two packets), as mochi does: the will
// unless the client disconnected cleanly, the hook's OnDisconnect, and
// the session dropped when it does not outlive the connection.
//
// Only the client's DISCONNECT is clean. A client the broker stopped
// between two packets, for a takeover or its shutdown, ends with that
// cause and sends its will: mochi's read loop would drop it, when the
// stop came before the loop's next read rather than during it.
func (s *mqttSession) end(err error) {
	cl, srv := s.cl, s.m.server
	if cause := cl.StopCause(); err == nil && cause != nil && !errors.Is(cause, packets.CodeDisconnect) {
		err = cause
	}
	if err != nil {
		s.m.sendWill(cl)
		cl.Stop(err)
	} else {
		cl.Properties.Will = mqtt.Will{}
	}
	srv.Log.Debug("client disconnected", "error", err, "client", cl.ID, "remote", cl.Net.Remote, "listener", cl.Net.Listener)
	expire := (cl.Properties.ProtocolVersion == 5 && cl.Properties.Props.SessionExpiryInterval == 0) ||
		(cl.Properties.ProtocolVersion < 5 && cl.Properties.Clean)
	s.m.hook.OnDisconnect(cl, err, expire)
	s.m.mu.Lock()
	if cur, ok := srv.Clients.Get(cl.ID); expire && ok && cur == cl && s.takenOver.Load() == 0 {
		// The route first: no command is readied for cl after it.
		s.m.hook.unsubscribeClient(cl)
		cl.ClearInflights()
		s.m.hook.forgetInflight(cl) // noted again if a command came since OnDisconnect
		s.m.hook.queues.forget(cl)
		srv.Clients.Delete(cl.ID)
	}
	s.m.mu.Unlock()
	s.fail(nil)
}

// fail closes a connection whose session ended, or never began (err says
// why, logged), and releases it.
func (s *mqttSession) fail(err error) {
	if err != nil {
		s.m.log.Debug("mqtt connection ended", "remote", s.cl.Net.Remote, "error", err)
	}
	if s.counted {
		atomic.AddInt64(&s.m.server.Info.ClientsConnected, -1)
	}
	s.cl.Stop(nil)
	s.m.live.Delete(s.cl)
	s.m.server.Listeners.ClientsWg.Done()
	s.release()
}

// bufferedConn is a connection read through a buffer of its own.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
