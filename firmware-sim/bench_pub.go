package firmwaresim

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"
)

// benchWriteBuffer is the write buffer of a bench publisher: at full rate
// one write carries a few hundred publishes.
const benchWriteBuffer = 64 << 10

// benchPub is one lean publisher: a raw MQTT connection whose writer
// keeps up to a window of QoS 1 publishes in flight and whose reader, on
// its own goroutine, takes the PUBACKs.
type benchPub struct {
	b     *bench
	id    string
	topic string
	conn  net.Conn
	w     *bufio.Writer
	// slots holds a token per QoS 1 publish in flight: the writer puts
	// one in before each publish, the reader takes one out per PUBACK.
	slots chan struct{}
	// sentAt holds the send time (µs since the run's start) of the
	// publishes in flight, by seq modulo its length (at least the
	// window): brokers acknowledge in order, so the reader knows which
	// seq each PUBACK answers.
	sentAt []atomic.Int64
	ack    Histogram
	pk     []byte // the writer's packet buffer

	sent  atomic.Uint64
	acked atomic.Uint64
}

// dialBenchPub connects publisher i.
func (b *bench) dialBenchPub(ctx context.Context, i int) (*benchPub, error) {
	id := b.cfg.IDPrefix + strconv.Itoa(i)
	conn, err := b.dial(ctx, b.cfg.MQTT)
	if err != nil {
		return nil, err
	}
	p := &benchPub{b: b, id: id, topic: "devices/" + id + "/telemetry", conn: conn,
		w: bufio.NewWriterSize(conn, benchWriteBuffer), slots: make(chan struct{}, b.cfg.Window),
		sentAt: make([]atomic.Int64, b.cfg.Window+1)}
	if err := mqttHandshake(conn, mqttConnectPacket(id), mqttConnack, b.cfg.ConnectTimeout); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("publisher %s: %w", id, err)
	}
	return p, nil
}

// mqttHandshake writes pk and waits up to timeout for a packet of type
// want (CONNACK or SUBACK) that grants it.
func mqttHandshake(conn net.Conn, pk []byte, want byte, timeout time.Duration) error {
	_ = conn.SetDeadline(time.Now().Add(timeout))
	defer conn.SetDeadline(time.Time{})
	if _, err := conn.Write(pk); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	r := mqttReader{r: bufio.NewReaderSize(conn, 64)}
	typ, _, body, err := r.next()
	switch {
	case err != nil:
		return fmt.Errorf("read answer: %w", err)
	case typ != want:
		return fmt.Errorf("%w: got packet type %d, want %d", errMQTTPacket, typ, want)
	case want == mqttConnack && (len(body) < 2 || body[1] != 0):
		return fmt.Errorf("connection refused (CONNACK %x)", body)
	case want == mqttSuback && (len(body) < 3 || body[2] >= 0x80):
		return fmt.Errorf("subscription refused (SUBACK %x)", body)
	}
	return nil
}

// run publishes from start until end at rate messages a second (0: as
// fast as the window allows), then waits up to drain for the
// outstanding PUBACKs.
func (p *benchPub) run(start, end time.Time, rate float64, drain time.Duration) error {
	period := time.Duration(0)
	if rate > 0 {
		period = time.Duration(float64(time.Second) / rate)
	}
	// A broker that stops reading cannot hold the run past its drain.
	_ = p.conn.SetWriteDeadline(end.Add(drain))
	buf := make([]byte, 0, 256)
	var seq uint64
	qos := byte(1)
	if p.b.cfg.QoS0 {
		qos = 0
	}
	for k := int64(0); ; k++ {
		due := start.Add(time.Duration(k) * period)
		now := time.Now()
		if now.After(end) {
			break
		}
		if period > 0 && due.After(now) {
			if err := p.w.Flush(); err != nil {
				return err
			}
			time.Sleep(due.Sub(now))
		}
		if qos > 0 {
			if ok, err := p.takeSlot(end); err != nil {
				return err
			} else if !ok {
				break // the window stayed full until the end
			}
		}
		seq++
		sent := time.Now()
		p.sentAt[seq%uint64(len(p.sentAt))].Store(int64(sent.Sub(start) / time.Microsecond))
		buf = appendBenchPayload(buf[:0], p.b.seqBase+seq, sent, p.b.cfg.Metrics)
		p.pk = appendMQTTPublish(p.pk[:0], p.topic, qos, benchPacketID(seq), buf)
		if _, err := p.w.Write(p.pk); err != nil {
			return err
		}
		p.sent.Add(1)
	}
	if err := p.w.Flush(); err != nil {
		return err
	}
	if qos > 0 {
		p.waitAcks(drain)
	}
	return nil
}

// takeSlot takes a window slot, flushing what is buffered before waiting
// for one (the PUBACKs that free slots answer those publishes). It
// reports false when end comes first.
func (p *benchPub) takeSlot(end time.Time) (bool, error) {
	select {
	case p.slots <- struct{}{}:
		return true, nil
	default:
	}
	if err := p.w.Flush(); err != nil {
		return false, err
	}
	t := time.NewTimer(time.Until(end))
	defer t.Stop()
	select {
	case p.slots <- struct{}{}:
		return true, nil
	case <-p.b.lost:
		return false, fmt.Errorf("publisher %s: a connection was lost", p.id)
	case <-t.C:
		return false, nil
	}
}

// waitAcks waits until every publish is acknowledged, or drain passed.
func (p *benchPub) waitAcks(drain time.Duration) {
	deadline := time.Now().Add(drain)
	for p.acked.Load() < p.sent.Load() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// readAcks takes PUBACKs until the connection ends.
func (p *benchPub) readAcks(start time.Time) {
	r := mqttReader{r: bufio.NewReaderSize(p.conn, 16<<10)}
	var seq uint64
	for {
		typ, _, body, err := r.next()
		if err != nil {
			return
		}
		if typ != mqttPuback || len(body) < 2 {
			continue
		}
		seq++
		if id := uint16(body[0])<<8 | uint16(body[1]); id == benchPacketID(seq) {
			now := int64(time.Since(start) / time.Microsecond)
			p.ack.Record(time.Duration(now-p.sentAt[seq%uint64(len(p.sentAt))].Load()) * time.Microsecond)
		} else {
			p.b.outOfOrder.Add(1)
		}
		p.acked.Add(1)
		select {
		case <-p.slots:
		default:
		}
	}
}

// close disconnects cleanly.
func (p *benchPub) close() {
	_, _ = p.conn.Write(mqttDisconnectPacket)
	_ = p.conn.Close()
}

// appendBenchPayload appends a telemetry payload of metrics metrics:
// sent_us, the send time in microseconds since the Unix epoch, which
// watchers subtract from their receive time, then m1, m2, ….
func appendBenchPayload(b []byte, seq uint64, sent time.Time, metrics int) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"sent_us":`...)
	b = strconv.AppendInt(b, sent.UnixMicro(), 10)
	for i := 1; i < metrics; i++ {
		b = append(b, `,"m`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `":`...)
		b = strconv.AppendUint(b, seq%1000, 10)
	}
	return append(b, '}')
}

// benchPacketID is the packet id of a publisher's publish seq (from 1):
// 1 to 65535 in turn.
func benchPacketID(seq uint64) uint16 { return uint16((seq-1)%65535) + 1 }
