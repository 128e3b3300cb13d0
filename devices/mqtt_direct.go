//go:build unix

package devices

import (
	"errors"
	"fmt"
	"net"

	"github.com/mochi-mqtt/server/v2/packets"
)

// mqttDirect reads a client's plain TCP connection without a goroutine
// that stays parked while the client is idle, as directReader reads a
// WebSocket device's (ws_direct.go).
//
// A waiter goroutine parks in the socket's raw read and reads at most
// len(first) bytes when the client sends. It hands the connection's round
// to the broker's round workers (or a fresh goroutine), which frames the
// bytes into packets, hands each whole packet to mochi through the feed,
// reads on without waiting until the socket has nothing more and starts
// a new waiter. A packet that arrived only in part keeps its buffer until
// the rest comes; an idle connection holds none.
//
// The waiters and rounds of one connection run one after the other, each
// started by the previous one; the last one ends the session.
type mqttDirect struct {
	rawReader // its buffer holds the start of a packet
	s         *mqttSession
	feed      *mqttFeed
	// limit is the largest packet the client may send; 0: no limit of
	// ours. A larger one is refused after its header, unread.
	limit int
	// handle is d.packets, made once.
	handle func([]byte) (used, need int, err error)

	// first is what the waiter reads: a small packet (a PINGREQ, a
	// short publish) whole, so that it needs no other read.
	first [64]byte
}

// errMQTTStopped ends the reads of a client stopped between two packets
// (a clean disconnect, a takeover, the broker closing): end tells them
// apart by the client's stop cause.
var errMQTTStopped = errors.New("mqtt: client stopped")

// newMQTTDirect returns the reader of conn, or nil when conn is not a
// plain TCP connection.
func newMQTTDirect(s *mqttSession, conn net.Conn) mqttReader {
	tcp, ok := conn.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return nil
	}
	d := &mqttDirect{s: s, feed: &mqttFeed{Conn: conn}}
	d.init(raw)
	d.handle = d.packets
	return d
}

func (d *mqttDirect) conn() net.Conn { return d.feed }

// connect reads, under the deadline the listener set, until the first
// packet (the CONNECT) is whole, or its header says it is over the limit,
// and hands it to mochi.
func (d *mqttDirect) connect(limit int) error {
	d.limit = limit
	b := d.take()
	for {
		size, header, err := mqttPacketSize(b)
		switch {
		case err != nil:
			return err
		case header > 0 && limit > 0 && size > limit:
			d.feed.b = b[:header] // mochi reads the header and refuses it
			return nil
		case header > 0 && len(b) >= size:
			d.feed.b = b[:size]
			*d.buf = b[size:] // read after the CONNECT (start)
			return nil
		case header > 0 && size > cap(b):
			b = append(make([]byte, 0, size), b...)
		case len(b) == cap(b):
			b = append(make([]byte, 0, 2*cap(b)), b...)
		}
		n, err := d.feed.Conn.Read(b[len(b):cap(b)])
		if err != nil {
			return err
		}
		b = b[:len(b)+n]
	}
}

// start reads the packets after the CONNECT, beginning with those sent
// with it, on a round worker: the calling goroutine, grown by the
// CONNECT, ends.
func (d *mqttDirect) start() {
	rest := *d.buf
	d.buf, d.feed.b = nil, nil
	if len(rest) > 0 {
		b := d.take()
		d.keep(append(b, rest...))
	}
	refreshDeadline(d.s.cl)
	d.s.m.rounds.run(d)
}

// wait parks until the client sends, reads the first bytes and hands the
// connection to a round.
func (d *mqttDirect) wait() {
	d.waitRead(d.first[:])
	d.s.m.rounds.run(d)
}

// round handles what the waiter read and every packet after it until the
// socket has nothing more, then starts a new waiter; or it ends the
// session.
func (d *mqttDirect) round() {
	if d.err != nil {
		d.end(d.err)
		return
	}
	b, err := d.readRound(d.first[:d.n], d.handle)
	d.n = 0
	if err != nil {
		d.end(err)
		return
	}
	d.keep(b)
	go d.wait()
}

// packets hands the whole packets at the start of b to mochi and returns
// the bytes they took and, when the next packet's header is there, its
// size. An error ends the session.
func (d *mqttDirect) packets(b []byte) (used, need int, err error) {
	for {
		if d.s.cl.Closed() {
			return used, 0, errMQTTStopped
		}
		size, header, err := mqttPacketSize(b[used:])
		switch {
		case err != nil:
			return used, 0, err
		case header == 0:
			return used, 0, nil
		case d.limit > 0 && size > d.limit:
			d.feed.b = b[used : used+header]
			err = d.s.packet()
			d.feed.b = nil
			if err != nil {
				return used, 0, err // the limit's refusal
			}
			return used, 0, packets.ErrPacketTooLarge
		case len(b)-used < size:
			return used, size, nil
		}
		d.feed.b = b[used : used+size]
		err = d.s.packet()
		left := len(d.feed.b)
		d.feed.b = nil // the buffer is not the feed's to keep
		switch {
		case err != nil:
			return used, 0, err
		case left > 0:
			return used, 0, fmt.Errorf("mqtt: %d bytes of a %d-byte packet left unread", left, size)
		}
		used += size
		// As mochi's read loop does before each packet: the keepalive
		// counts from the end of the last packet handled, however long it
		// took, and not from bytes of a packet still incomplete.
		refreshDeadline(d.s.cl)
	}
}

// end ends the session for err, releasing its buffer.
func (d *mqttDirect) end(err error) {
	if d.buf != nil {
		d.release(*d.buf)
	}
	d.feed.b = nil
	if errors.Is(err, errMQTTStopped) {
		err = nil
	}
	d.s.end(err)
}
