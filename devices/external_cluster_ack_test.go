package devices

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// holdingBroker is an MQTT broker reduced to what a test of the hub's
// publishes needs: it accepts connections one at a time (the session is
// always present), grants every subscription, answers pings, and hands
// the test each PUBLISH it reads; it acknowledges one only when the test
// says so.
type holdingBroker struct {
	ln       net.Listener
	conns    chan *holdingConn
	accepted chan struct{}  // closed when accept returned
	wg       sync.WaitGroup // the connections' readers
}

// holdingConn is one client connection of a holdingBroker.
type holdingConn struct {
	conn net.Conn
	pubs chan *packets.PublishPacket
	mu   sync.Mutex // writes: the reader's answers and the test's PUBACKs
}

func startHoldingBroker(t *testing.T) *holdingBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &holdingBroker{ln: ln, conns: make(chan *holdingConn, 4), accepted: make(chan struct{})}
	go b.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		<-b.accepted
		for len(b.conns) > 0 { // connections the test did not take
			_ = (<-b.conns).conn.Close()
		}
		b.wg.Wait()
	})
	return b
}

func (b *holdingBroker) url() string { return "tcp://" + b.ln.Addr().String() }

func (b *holdingBroker) accept() {
	defer close(b.accepted)
	for {
		conn, err := b.ln.Accept()
		if err != nil {
			return
		}
		c := &holdingConn{conn: conn, pubs: make(chan *packets.PublishPacket, 16)}
		select {
		case b.conns <- c:
		default: // more connections than the test takes: refused
			_ = conn.Close()
			continue
		}
		b.wg.Add(1)
		go c.serve(&b.wg)
	}
}

// next returns the next connection, failing the test after waitGuard.
func (b *holdingBroker) next(t *testing.T) *holdingConn {
	t.Helper()
	select {
	case c := <-b.conns:
		t.Cleanup(func() { _ = c.conn.Close() })
		return c
	case <-time.After(waitGuard):
		t.Fatal("no connection to the broker")
		return nil
	}
}

// serve reads the client's packets until the connection ends.
func (c *holdingConn) serve(wg *sync.WaitGroup) {
	defer wg.Done()
	defer close(c.pubs)
	for {
		p, err := packets.ReadPacket(c.conn)
		if err != nil {
			return
		}
		switch p := p.(type) {
		case *packets.ConnectPacket:
			ack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
			ack.SessionPresent = true
			c.write(ack)
		case *packets.SubscribePacket:
			ack := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
			ack.MessageID, ack.ReturnCodes = p.MessageID, p.Qoss
			c.write(ack)
		case *packets.PingreqPacket:
			c.write(packets.NewControlPacket(packets.Pingresp))
		case *packets.PublishPacket:
			c.pubs <- p
		}
	}
}

func (c *holdingConn) write(p packets.ControlPacket) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = p.Write(c.conn)
}

// publish returns the next PUBLISH read, failing the test after waitGuard.
func (c *holdingConn) publish(t *testing.T) *packets.PublishPacket {
	t.Helper()
	select {
	case p, ok := <-c.pubs:
		if !ok {
			t.Fatal("connection closed before a PUBLISH")
		}
		return p
	case <-time.After(waitGuard):
		t.Fatal("no PUBLISH")
		return nil
	}
}

func (c *holdingConn) puback(id uint16) {
	ack := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
	ack.MessageID = id
	c.write(ack)
}

// A cluster message's token completes when the broker acknowledged the
// message, also when the connection was lost before that: after the
// reconnection paho sends the message again and hands the resend a token
// of its own, completing the first one at once, without error, before any
// acknowledgement. The forwarder would take that for the broker's PUBACK
// and remove the message from its outbox.
func TestExternalPeerPublishWaitsForAckAcrossReconnect(t *testing.T) {
	b := startHoldingBroker(t)
	e, _, _ := newUnstartedExternal(t, b.url())
	ctx, cancel := context.WithTimeout(context.Background(), waitGuard)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer e.Shutdown(context.Background())
	first := b.next(t)

	tok := e.PublishPeers("telehub/c1/ws/n1/d1", false, []byte("reading"))
	sent := first.publish(t)
	_ = first.conn.Close() // lost before the PUBACK

	second := b.next(t)
	resent := second.publish(t)
	if !resent.Dup || resent.MessageID != sent.MessageID || string(resent.Payload) != "reading" {
		t.Fatalf("resent %v, want the first publish again (id %d) with DUP", resent, sent.MessageID)
	}
	select {
	case <-tok.Done():
		t.Fatalf("token completed (error %v) though the broker acknowledged nothing", tok.Error())
	default:
	}
	second.puback(resent.MessageID)
	if !tok.WaitTimeout(waitGuard) || tok.Error() != nil {
		t.Fatalf("after the PUBACK: token error %v, want completed without error", tok.Error())
	}
}
