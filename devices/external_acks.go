package devices

import (
	"sync"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/telehub/telehub/bridge"
)

// externalAcks is the queue of messages waiting for their
// acknowledgement, in arrival order. A message is acknowledged once it and
// every message before it are released, so that the broker gets PUBACKs in
// the order it sent the messages. The queue is bounded by the broker's
// window of unacknowledged messages.
type externalAcks struct {
	mu     sync.Mutex
	queue  []*externalAck
	wake   chan struct{} // capacity 1
	closed bool
}

// externalAck is one queued message.
type externalAck struct {
	q         *externalAcks
	msg       paho.Message
	released  bool
	ack       bool
	committed func(bridge.Result) // the Done of the message's readings
}

// push queues m. QoS 0 messages, which need no acknowledgement, and
// messages arriving after Shutdown are not queued: their slot releases
// nothing.
func (q *externalAcks) push(m paho.Message) *externalAck {
	a := &externalAck{q: q, msg: m}
	a.committed = a.onCommit
	q.mu.Lock()
	defer q.mu.Unlock()
	if m.Qos() == 0 || q.closed {
		a.q = nil
		return a
	}
	q.queue = append(q.queue, a)
	return a
}

// onCommit is the Done of a message's readings; it runs on the store's
// writer goroutine and does not block. A failed commit leaves the message
// unacknowledged.
func (a *externalAck) onCommit(r bridge.Result) { a.q.release(a, r.Err == nil) }

// release marks a as done with; ack says whether to acknowledge it.
func (q *externalAcks) release(a *externalAck, ack bool) {
	if q == nil || a.q == nil {
		return
	}
	q.mu.Lock()
	a.released, a.ack = true, ack
	head := !q.closed && len(q.queue) > 0 && q.queue[0] == a
	q.mu.Unlock()
	if head {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// take appends to batch the messages at the head of the queue that are
// released and to be acknowledged, and removes them from the queue. With
// final it also closes the queue: later releases are ignored.
func (q *externalAcks) take(batch []paho.Message, final bool) []paho.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for ; n < len(q.queue) && q.queue[n].released; n++ {
		if q.queue[n].ack {
			batch = append(batch, q.queue[n].msg)
		}
	}
	m := copy(q.queue, q.queue[n:])
	clear(q.queue[m:])
	q.queue = q.queue[:m]
	if final {
		q.closed = true
	}
	return batch
}
