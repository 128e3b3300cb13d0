package devices

import (
	"cmp"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Defaults of BrokerLimits.
const (
	DefaultMQTTMaxClients           = 10_000
	DefaultMQTTMaxClientsPerAddress = 1000
	DefaultMQTTMaxSessions          = 20_000
	DefaultMQTTSessionExpiry        = time.Hour
	DefaultMQTTMaxQueued            = 1000
	DefaultMQTTMaxQueuedBytes       = 1 << 20
	DefaultMQTTMaxQueuedBytesTotal  = 256 << 20
	DefaultMQTTMaxSubscriptions     = 100
	DefaultMQTTMaxRetained          = 10_000
	DefaultMQTTMaxRetainedPerDevice = 100
	DefaultMQTTMaxRetainedBytes     = 64 << 20
	DefaultMQTTReceiveMaximum       = 1024
)

// mqttWritesPending bounds each connection's outbound queue in the broker
// (messages written to the client's socket by its writer): past it, a
// message for a client that does not read is dropped and counted.
const mqttWritesPending = 128

// mqttReadBufferSize is the read buffer a connection read on a goroutine
// of its own (TLS) holds for as long as it is open (mochi's default is
// 2 KiB). It holds several small publishes; a packet larger than it is
// read straight into its own buffer.
const mqttReadBufferSize = 1024

// mqttSessionReadBuffer is the read buffer mochi keeps for each client,
// the smallest bufio allows: each connection is read through a buffer of
// its own (mqttSessions.serve).
const mqttSessionReadBuffer = 16

// BrokerLimits bounds what clients and sessions may hold in the embedded
// broker. Every field's zero value means its default; a negative value is
// invalid.
type BrokerLimits struct {
	// MaxClients is how many clients may be connected at once; more are
	// refused at CONNECT (server unavailable; MQTT 5: 0x89 server busy).
	// Default 10 000.
	MaxClients int
	// MaxClientsPerAddress is how many connections one source address may
	// hold at once; more are answered CONNACK server unavailable (MQTT 5:
	// 0x97 quota exceeded) and closed before the broker sees them. Default
	// 1000.
	MaxClientsPerAddress int
	// MaxSessions is how many sessions the broker keeps, connected or not;
	// past it, the session disconnected the longest is dropped with its
	// queued messages. Default 20 000.
	MaxSessions int
	// SessionExpiry is how long the session of a client that connected
	// with clean session off (MQTT 5: a session expiry interval) is kept
	// after it disconnects; MQTT 5 clients may ask for less. Default 1h.
	SessionExpiry time.Duration
	// MaxQueued is how many QoS 1 and 2 messages one session may hold,
	// sent but unacknowledged or waiting while the client is away; more
	// are dropped and counted. Default 1000.
	MaxQueued int
	// MaxQueuedBytes bounds the bytes (payload and topic) of those messages
	// per session: a session takes messages while it holds less. Default
	// 1 MiB.
	MaxQueuedBytes int
	// MaxQueuedBytesTotal bounds them across all sessions; a session's
	// newest message counts from its next delivery on, so the total may
	// pass the bound by one message a session. Default 256 MiB.
	MaxQueuedBytesTotal int
	// MaxSubscriptions is how many topic filters one client may subscribe
	// to; more are refused in the SUBACK (MQTT 5: 0x97 quota exceeded,
	// MQTT 3.1.1: 0x80). Default 100.
	MaxSubscriptions int
	// MaxRetained is how many retained messages the broker keeps in total;
	// a publish that would retain more is delivered (and stored, for a
	// reading) but not retained. Default 10 000.
	MaxRetained int
	// MaxRetainedPerDevice is how many of them may be under one device's
	// devices/{id}/ topics. Default 100.
	MaxRetainedPerDevice int
	// MaxRetainedBytes bounds the bytes (payload and topic) of all retained
	// messages. Default 64 MiB.
	MaxRetainedBytes int
	// ReceiveMaximum is how many QoS 1 and 2 publishes of one client may
	// wait for their commits at once (MQTT 5 clients are told it in the
	// CONNACK); the broker reads nothing more from a client at the bound
	// until its oldest publish is acknowledged. At most 65535. Default 1024.
	ReceiveMaximum int
}

// withDefaults validates l and returns it with defaults filled.
func (l BrokerLimits) withDefaults() (BrokerLimits, error) {
	if l.MaxClients < 0 || l.MaxClientsPerAddress < 0 || l.MaxSessions < 0 || l.SessionExpiry < 0 || l.MaxQueued < 0 ||
		l.MaxQueuedBytes < 0 || l.MaxQueuedBytesTotal < 0 || l.MaxSubscriptions < 0 ||
		l.MaxRetained < 0 || l.MaxRetainedPerDevice < 0 || l.MaxRetainedBytes < 0 || l.ReceiveMaximum < 0 {
		return l, fmt.Errorf("%w: negative broker limit", ErrInvalidConfig)
	}
	if l.MaxQueued > math.MaxUint16 {
		return l, fmt.Errorf("%w: MaxQueued %d is over %d (MQTT packet ids)", ErrInvalidConfig, l.MaxQueued, math.MaxUint16)
	}
	if l.ReceiveMaximum > math.MaxUint16 {
		return l, fmt.Errorf("%w: ReceiveMaximum %d is over %d (MQTT packet ids)", ErrInvalidConfig, l.ReceiveMaximum, math.MaxUint16)
	}
	if l.SessionExpiry > math.MaxUint32*time.Second {
		return l, fmt.Errorf("%w: SessionExpiry %s is over the MQTT limit", ErrInvalidConfig, l.SessionExpiry)
	}
	l.MaxClients = cmp.Or(l.MaxClients, DefaultMQTTMaxClients)
	l.MaxClientsPerAddress = cmp.Or(l.MaxClientsPerAddress, DefaultMQTTMaxClientsPerAddress)
	l.MaxSessions = cmp.Or(l.MaxSessions, DefaultMQTTMaxSessions)
	l.SessionExpiry = cmp.Or(l.SessionExpiry, DefaultMQTTSessionExpiry)
	l.MaxQueued = cmp.Or(l.MaxQueued, DefaultMQTTMaxQueued)
	l.MaxQueuedBytes = cmp.Or(l.MaxQueuedBytes, DefaultMQTTMaxQueuedBytes)
	l.MaxQueuedBytesTotal = cmp.Or(l.MaxQueuedBytesTotal, DefaultMQTTMaxQueuedBytesTotal)
	l.MaxSubscriptions = cmp.Or(l.MaxSubscriptions, DefaultMQTTMaxSubscriptions)
	l.MaxRetained = cmp.Or(l.MaxRetained, DefaultMQTTMaxRetained)
	l.MaxRetainedPerDevice = cmp.Or(l.MaxRetainedPerDevice, DefaultMQTTMaxRetainedPerDevice)
	l.MaxRetainedBytes = cmp.Or(l.MaxRetainedBytes, DefaultMQTTMaxRetainedBytes)
	l.ReceiveMaximum = cmp.Or(l.ReceiveMaximum, DefaultMQTTReceiveMaximum)
	return l, nil
}

// mqttCapabilities are mochi's capabilities for limits l and packets of
// at most maxPacket bytes.
func mqttCapabilities(l BrokerLimits, maxPacket uint32) *mqtt.Capabilities {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClients = int64(l.MaxClients)
	caps.MaximumSessionExpiryInterval = uint32(l.SessionExpiry / time.Second)
	caps.MaximumInflight = uint16(l.MaxQueued)
	caps.MaximumClientWritesPending = mqttWritesPending
	caps.ReceiveMaximum = uint16(l.ReceiveMaximum)
	caps.MaximumPacketSize = maxPacket
	// A PUBACK copies no properties of the PUBLISH (mochi would add its
	// user properties, with reason code 0x01).
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	return caps
}

// mqttQueue is what the hook knows of one session's stored QoS 1 and 2
// messages: their number and bytes when last counted.
type mqttQueue struct {
	mu    sync.Mutex
	n     int
	bytes int
}

// mqttQueues counts the messages the sessions hold, to refuse deliveries
// over the limits. mochi keeps them in each client's Inflight; a session
// is counted again when its number of messages changed since the last
// count, so the bytes are exact after any delivery or acknowledgement and
// at most one message's worth off while a session both gains and loses.
type mqttQueues struct {
	limits BrokerLimits
	total  atomic.Int64
	queues sync.Map // *mqtt.Client -> *mqttQueue
}

// allow reports whether one more message may be delivered to cl's session.
func (q *mqttQueues) allow(cl *mqtt.Client) bool {
	n := cl.State.Inflight.Len()
	if n >= q.limits.MaxQueued {
		return false
	}
	v, ok := q.queues.Load(cl)
	if !ok {
		v, _ = q.queues.LoadOrStore(cl, &mqttQueue{})
	}
	s := v.(*mqttQueue)
	s.mu.Lock()
	if s.n != n {
		bytes := queuedBytes(cl)
		q.total.Add(int64(bytes - s.bytes))
		s.n, s.bytes = n, bytes
	}
	bytes := s.bytes
	s.mu.Unlock()
	return bytes < q.limits.MaxQueuedBytes && q.total.Load() < int64(q.limits.MaxQueuedBytesTotal)
}

// forget stops counting cl's session (it ended, expired or moved to a
// new connection, which is counted afresh).
func (q *mqttQueues) forget(cl *mqtt.Client) {
	if v, ok := q.queues.LoadAndDelete(cl); ok {
		s := v.(*mqttQueue)
		s.mu.Lock()
		q.total.Add(-int64(s.bytes))
		s.bytes = 0
		s.mu.Unlock()
	}
}

// queuedBytes counts the bytes of the messages cl's session holds.
func queuedBytes(cl *mqtt.Client) int {
	n := 0
	for _, pk := range cl.State.Inflight.GetAll(false) {
		if pk.FixedHeader.Type == packets.Publish {
			n += len(pk.Payload) + len(pk.TopicName)
		}
	}
	return n
}

// mqttRetained counts the retained messages, per device and in total, to
// refuse retaining more than the limits allow. It follows mochi's retained
// store through the hook's OnRetainMessage and OnRetainedExpired.
type mqttRetained struct {
	limits BrokerLimits

	mu     sync.Mutex
	sizes  map[string]int // topic -> bytes
	perDev map[string]int // device -> retained messages under its topics
	bytes  int
}

func newMQTTRetained(l BrokerLimits) *mqttRetained {
	return &mqttRetained{limits: l, sizes: make(map[string]int), perDev: make(map[string]int)}
}

// allow reports whether a message of size bytes may be retained on topic
// (of device, "" for a topic of no device).
func (r *mqttRetained) allow(topic, device string, size int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, replaces := r.sizes[topic]
	if !replaces && (len(r.sizes) >= r.limits.MaxRetained ||
		device != "" && r.perDev[device] >= r.limits.MaxRetainedPerDevice) {
		return false
	}
	return r.bytes-old+size <= r.limits.MaxRetainedBytes
}

// set records that topic now retains size bytes.
func (r *mqttRetained) set(topic, device string, size int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, replaces := r.sizes[topic]
	if !replaces && device != "" {
		r.perDev[device]++
	}
	r.sizes[topic] = size
	r.bytes += size - old
}

// clear records that topic retains nothing.
func (r *mqttRetained) clear(topic, device string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, ok := r.sizes[topic]
	if !ok {
		return
	}
	delete(r.sizes, topic)
	r.bytes -= old
	if device != "" {
		if r.perDev[device]--; r.perDev[device] <= 0 {
			delete(r.perDev, device)
		}
	}
}

// retainedSize is what a retained message counts for.
func retainedSize(pk *packets.Packet) int { return len(pk.TopicName) + len(pk.Payload) }

// topicDevice is the device whose topics hold topic, or "".
func topicDevice(topic string) string {
	r, _ := parseDeviceTopic(topic)
	return r.device
}
