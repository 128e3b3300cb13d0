package firmwaresim

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
)

// wsLink is a device's WebSocket connection. The gws read loop
// goroutine, owned by the Sim's WaitGroup, delivers acks, errors and
// commands.
type wsLink struct {
	d     *device
	conn  *gws.Conn
	senml bool
	buf   []byte // frame encoding buffer; used under d.sendMu only
	ep    int    // the device's seq epoch when the link was made
	ended atomic.Bool
	once  sync.Once

	writeTimeout time.Duration
	readTimeout  time.Duration
}

// dialWS connects device d over WebSocket and starts its read loop.
func (s *Sim) dialWS(ctx context.Context, d *device) (link, error) {
	l := &wsLink{
		d: d, senml: s.cfg.Format == FormatSenML, ep: d.currentEpoch(),
		writeTimeout: s.cfg.WriteTimeout,
		readTimeout:  max(time.Minute, 3*s.cfg.Heartbeat),
	}
	opt := &gws.ClientOption{
		Addr:             wsURL(s.cfg.Hub, d.id),
		HandshakeTimeout: s.cfg.ConnectTimeout,
		NewDialer: func() (gws.Dialer, error) {
			return ctxDialer{ctx: ctx, d: net.Dialer{Timeout: s.cfg.ConnectTimeout}}, nil
		},
		Logger:    gwsLogger{s},
		TlsConfig: s.tlsClone(),
	}
	if tok := s.tokens[d.index]; tok != "" {
		opt.RequestHeader = http.Header{"Authorization": {"Bearer " + tok}}
	}
	conn, resp, err := gws.NewClient(l, opt)
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			return nil, fmt.Errorf("websocket %s: HTTP 401: the hub refused the device's token (--token, --token-file, --token-pattern)", opt.Addr)
		}
		if resp != nil {
			return nil, fmt.Errorf("websocket %s: HTTP %d: %w", opt.Addr, resp.StatusCode, err)
		}
		return nil, fmt.Errorf("websocket %s: %w", opt.Addr, err)
	}
	l.conn = conn
	s.links.Go(func() { readLoop(conn, l) })
	return l, nil
}

func (l *wsLink) send(e *entry) error {
	l.buf = appendWSFrame(l.buf[:0], e, l.senml)
	return l.write(l.buf)
}

func (l *wsLink) heartbeat() error { return l.write(wsHeartbeat) }

func (l *wsLink) malformed(variant int) error { return l.write(malformedWS[variant]) }

func (l *wsLink) write(frame []byte) error {
	if err := l.conn.SetWriteDeadline(time.Now().Add(l.writeTimeout)); err != nil {
		return err
	}
	return l.conn.WriteMessage(gws.OpcodeText, frame)
}

func (l *wsLink) ackCommand(id string) error { return l.write(wsCommandAck(id)) }

func (l *wsLink) answer(r *commandResult) error { return l.write(r.wsFrame()) }

func (l *wsLink) confirms() bool { return true }

func (l *wsLink) epoch() int { return l.ep }

func (l *wsLink) dead() bool { return l.ended.Load() }

// drop closes the TCP connection without a close frame, like a device
// losing power or signal.
func (l *wsLink) drop() { l.once.Do(func() { _ = l.conn.NetConn().Close() }) }

// close sends a normal close frame and closes the connection.
func (l *wsLink) close() { l.once.Do(func() { _ = l.conn.WriteClose(1000, nil) }) }

// OnOpen arms the read deadline, which every ping and message from the
// hub extends: the hub pings every heartbeat interval.
func (l *wsLink) OnOpen(c *gws.Conn) { _ = c.SetReadDeadline(time.Now().Add(l.readTimeout)) }

// OnClose reports the end of the connection to the device.
func (l *wsLink) OnClose(_ *gws.Conn, err error) {
	l.ended.Store(true)
	l.d.s.log.Debug("websocket closed", "device", l.d.id, "err", err)
	l.d.lost(l)
}

// OnPing answers the hub's ping, unless the device went silent.
func (l *wsLink) OnPing(c *gws.Conn, _ []byte) {
	if l.d.muted.Load() {
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(l.readTimeout))
	_ = c.WritePong(nil)
}

// OnPong ignores pongs: the device never pings.
func (l *wsLink) OnPong(*gws.Conn, []byte) {}

// OnMessage handles acks, error answers and commands.
func (l *wsLink) OnMessage(c *gws.Conn, msg *gws.Message) {
	_ = c.SetReadDeadline(time.Now().Add(l.readTimeout))
	f, err := parseHubFrame(msg.Bytes())
	_ = msg.Close()
	if err != nil {
		l.d.s.log.Debug("bad frame from hub", "device", l.d.id, "err", err)
		return
	}
	switch {
	case f.Kind == frameAck && f.HasSeq:
		l.d.onAck(l.ep, f.Seq)
	case f.Kind == frameError:
		l.d.onError(l.ep, f)
	case f.Kind == frameCommand:
		l.d.onCommand(l, *f.Cmd)
	}
}

// ctxDialer dials TCP under a context, so that shutdown cancels dials.
type ctxDialer struct {
	ctx context.Context
	d   net.Dialer
}

func (c ctxDialer) Dial(network, addr string) (net.Conn, error) {
	return c.d.DialContext(c.ctx, network, addr)
}

// gwsLogger routes gws's own error reports to the Sim's logger.
type gwsLogger struct{ s *Sim }

func (g gwsLogger) Error(v ...any) { g.s.log.Debug("gws", "msg", fmt.Sprint(v...)) }
