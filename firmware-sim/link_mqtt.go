package firmwaresim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// errLinkClosed reports a send on a link that already ended.
var errLinkClosed = errors.New("connection closed")

// mqttQuiesce is how long a clean MQTT disconnect waits for the DISCONNECT
// packet to go out, in milliseconds.
const mqttQuiesce = 250

// mqttLink is a device's MQTT connection through a paho client
// made for this connection alone: paho's own reconnect and offline store
// are off (the store is unbounded and drops QoS 0 while reconnecting), the
// device's bounded buffer resends instead. For QoS 1 one goroutine per
// connection, owned by the Sim's WaitGroup, waits for the PUBACKs in order.
type mqttLink struct {
	d       *device
	client  mqtt.Client
	conn    atomic.Pointer[dropConn] // the TCP connection, for drop
	qos     byte
	format  Format
	topic   string                   // devices/{id}/telemetry
	metrics [len(metricNames)]string // devices/{id}/telemetry/{metric}
	beat    string                   // devices/{id}/heartbeat
	errs    string                   // devices/{id}/errors
	cmds    string                   // devices/{id}/commands
	ep      int                      // the device's seq epoch when the link was made

	acks     chan mqttPending
	stop     chan struct{}
	stopOnce sync.Once
	ended    atomic.Bool
}

// mqttPending is one reading's publishes awaiting their PUBACKs.
type mqttPending struct {
	seq  uint64
	toks [len(metricNames)]mqtt.Token
	n    int
}

// dialMQTT connects device d to the broker, subscribes to its error
// answers (QoS 0) and its commands (QoS 1) and announces it online.
func (s *Sim) dialMQTT(ctx context.Context, d *device) (link, error) {
	l := s.newMQTTLink(d)
	l.client = mqtt.NewClient(s.mqttOptions(ctx, d, l))
	tok := l.client.Connect()
	if !tok.WaitTimeout(2*s.cfg.ConnectTimeout) || tok.Error() != nil {
		l.client.Disconnect(0)
		l.shutdown()
		return nil, fmt.Errorf("mqtt connect %s as %s: %w", s.cfg.MQTT, d.id, tokenErr(tok))
	}
	sub := l.client.SubscribeMultiple(map[string]byte{l.errs: 0, l.cmds: 1}, l.onMessage)
	if !sub.WaitTimeout(s.cfg.ConnectTimeout) || sub.Error() != nil {
		l.close()
		return nil, fmt.Errorf("mqtt subscribe %s and %s: %w", l.errs, l.cmds, tokenErr(sub))
	}
	l.client.Publish("devices/"+d.id+"/status", 1, false, "online")
	if l.qos > 0 {
		s.links.Go(l.waitAcks)
	}
	return l, nil
}

func (s *Sim) newMQTTLink(d *device) *mqttLink {
	l := &mqttLink{
		d: d, qos: s.cfg.qos(), format: s.cfg.Format, ep: d.currentEpoch(),
		topic: "devices/" + d.id + "/telemetry", beat: "devices/" + d.id + "/heartbeat",
		errs: "devices/" + d.id + "/errors", cmds: "devices/" + d.id + "/commands",
		acks: make(chan mqttPending, s.cfg.BufferSize+1), stop: make(chan struct{}),
	}
	for i, m := range metricNames {
		l.metrics[i] = l.topic + "/" + m
	}
	return l
}

func (s *Sim) mqttOptions(ctx context.Context, d *device, l *mqttLink) *mqtt.ClientOptions {
	keepAlive := 30 * time.Second
	if d.silent {
		keepAlive = 0 // a silent device must not be kept alive by PINGREQs
	}
	opts := mqtt.NewClientOptions().AddBroker(s.cfg.MQTT).SetClientID(d.id).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(s.cfg.ConnectTimeout).SetWriteTimeout(s.cfg.WriteTimeout).
		SetKeepAlive(keepAlive).SetPingTimeout(10*time.Second).
		SetWill("devices/"+d.id+"/status", "offline", 1, false).
		SetConnectionLostHandler(l.onLost).
		SetDefaultPublishHandler(func(mqtt.Client, mqtt.Message) {}).
		SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
			conn, err := s.dialBroker(ctx, u)
			if err != nil {
				return nil, err
			}
			dc := &dropConn{Conn: conn}
			l.conn.Store(dc)
			return dc, nil
		})
	if tok := s.tokens[d.index]; tok != "" {
		opts.SetUsername(d.id).SetPassword(tok)
	}
	return opts
}

// dialBroker opens a connection to the broker of u, over TLS for the TLS
// schemes (ssl://, tls://, mqtts://, tcps://).
func (s *Sim) dialBroker(ctx context.Context, u *url.URL) (net.Conn, error) {
	dialer := net.Dialer{Timeout: s.cfg.ConnectTimeout}
	conn, err := dialer.DialContext(ctx, "tcp", u.Host)
	if err != nil || !isTLSBroker(u.Scheme) {
		return conn, err
	}
	cfg := s.tlsClone()
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	tc := tls.Client(conn, cfg)
	hctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("tls handshake with %s: %w", u.Host, err)
	}
	return tc, nil
}

func tokenErr(t mqtt.Token) error {
	if err := t.Error(); err != nil {
		return err
	}
	return errors.New("timed out")
}

func (l *mqttLink) send(e *entry) error {
	p := mqttPending{seq: e.seq}
	if l.format == FormatPlain {
		for i := range metricNames {
			p.toks[i] = l.client.Publish(l.metrics[i], l.qos, false, appendPlainValue(nil, &e.r, i))
		}
		p.n = len(metricNames)
	} else {
		p.toks[0] = l.client.Publish(l.topic, l.qos, false, appendMQTTPayload(make([]byte, 0, 192), e, l.format))
		p.n = 1
	}
	for _, t := range p.toks[:p.n] {
		select {
		case <-t.Done():
			if err := t.Error(); err != nil {
				return err
			}
		default:
		}
	}
	if l.qos == 0 {
		return nil
	}
	// The window of readings awaiting PUBACKs is full while the hub
	// acks nothing: wait, but not past the end of the link or the run.
	select {
	case l.acks <- p:
		return nil
	case <-l.stop:
		return errLinkClosed
	case <-l.d.s.halt:
		return errLinkClosed
	}
}

func (l *mqttLink) heartbeat() error {
	return tokenFailure(l.client.Publish(l.beat, 0, false, "1"))
}

func (l *mqttLink) malformed(variant int) error {
	return tokenFailure(l.client.Publish(l.topic, l.qos, false, malformedMQTT[variant]))
}

// tokenFailure returns the error of a publish that failed at once.
func tokenFailure(t mqtt.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	default:
		return nil
	}
}

func (l *mqttLink) confirms() bool { return l.qos > 0 }

func (l *mqttLink) epoch() int { return l.ep }

func (l *mqttLink) dead() bool { return l.ended.Load() }

// drop closes the TCP connection under paho, which then reports the loss;
// the broker publishes the device's last will.
func (l *mqttLink) drop() {
	if c := l.conn.Load(); c != nil {
		c.drop()
	}
}

// close disconnects cleanly.
func (l *mqttLink) close() {
	l.ended.Store(true)
	l.client.Disconnect(mqttQuiesce)
	l.shutdown()
}

func (l *mqttLink) shutdown() { l.stopOnce.Do(func() { close(l.stop) }) }

func (l *mqttLink) onLost(_ mqtt.Client, err error) {
	l.ended.Store(true)
	l.shutdown()
	l.d.s.log.Debug("mqtt connection lost", "device", l.d.id, "err", err)
	l.d.lost(l)
}

// onMessage handles a publish on devices/{id}/commands (a command) or
// devices/{id}/errors (an error answer, counted). It runs on paho's
// router goroutine and must not block: the PUBACK of a command follows
// when it returns, and the command runs on the device's scheduler.
func (l *mqttLink) onMessage(_ mqtt.Client, m mqtt.Message) {
	if m.Topic() != l.cmds {
		l.d.onError(l.ep, hubFrame{Kind: frameError})
		return
	}
	c, err := parseCommand(m.Payload())
	if err != nil {
		l.d.s.log.Debug("bad command from hub", "device", l.d.id, "err", err)
		return
	}
	l.d.onCommand(l, c)
}

// ackCommand does nothing: the PUBACK of the command's publish confirms it.
func (l *mqttLink) ackCommand(string) error { return nil }

// answer publishes r with QoS 1 on devices/{id}/commands/{cid}/result.
func (l *mqttLink) answer(r *commandResult) error {
	return tokenFailure(l.client.Publish(l.cmds+"/"+r.id+"/result", 1, false, r.mqttPayload()))
}

// waitAcks confirms readings as their PUBACKs arrive, in publish order,
// until the link ends.
func (l *mqttLink) waitAcks() {
	for {
		select {
		case <-l.stop:
			return
		case p := <-l.acks:
			if !l.await(&p) {
				return
			}
		}
	}
}

// await waits for every PUBACK of p and confirms the reading when all
// arrived; false when the link ended first.
func (l *mqttLink) await(p *mqttPending) bool {
	ok := true
	for _, t := range p.toks[:p.n] {
		select {
		case <-t.Done():
			ok = ok && t.Error() == nil
		case <-l.stop:
			return false
		}
	}
	if ok {
		l.d.onAck(l.ep, p.seq)
	}
	return true
}

// errDropped is the error a dropped connection reports to paho. paho takes
// "use of closed network connection" for a disconnect it asked for and
// stays silent, so a drop must read as a failure of another kind.
var errDropped = errors.New("connection dropped (fault injection)")

// dropConn is a TCP connection that can be dropped under paho's feet.
type dropConn struct {
	net.Conn
	dropped atomic.Bool
}

func (c *dropConn) drop() {
	c.dropped.Store(true)
	_ = c.Conn.Close()
}

// Read reads from the connection; after a drop every error is errDropped.
func (c *dropConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && c.dropped.Load() {
		err = errDropped
	}
	return n, err
}

// Write writes to the connection; after a drop every error is errDropped.
func (c *dropConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if err != nil && c.dropped.Load() {
		err = errDropped
	}
	return n, err
}
