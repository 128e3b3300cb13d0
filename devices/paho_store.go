package devices

import (
	"strconv"
	"sync"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// orderedStore is the external broker client's session store: in memory
// like paho's MemoryStore, but All returns the keys in the order they were
// put. After a reconnect paho sends the session's unacknowledged publishes
// again in the order All gives, and MQTT wants them in their first order:
// a peer hub of a cluster keeps, per origin and device, the highest origin
// id it stored, so a later reading resent before an earlier one would make
// the earlier one look stored already. MemoryStore's order is a map's.
type orderedStore struct {
	mu   sync.Mutex
	msgs map[string]storedPacket
	// order holds the keys in the order of their Put, with the put's
	// number; an entry whose number is not its key's current one was
	// deleted (or put again later) and is skipped.
	order []orderedKey
	next  uint64
	// gone holds, per key, the channels to close when it is deleted.
	gone map[string][]chan struct{}
}

type storedPacket struct {
	pk  packets.ControlPacket
	num uint64
}

type orderedKey struct {
	key string
	num uint64
}

func newOrderedStore() *orderedStore {
	return &orderedStore{msgs: make(map[string]storedPacket), gone: make(map[string][]chan struct{})}
}

// outboundKey is the key paho stores an outbound packet under.
func outboundKey(id uint16) string { return "o." + strconv.FormatUint(uint64(id), 10) }

// deleted returns a channel closed once nothing is stored under key. For
// an outbound QoS 1 publish that is when the broker acknowledged it: paho
// deletes the packet on its PUBACK and on nothing else, and keeps it
// across reconnections.
func (s *orderedStore) deleted(key string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	if _, ok := s.msgs[key]; !ok {
		close(ch)
		return ch
	}
	s.gone[key] = append(s.gone[key], ch)
	return ch
}

// Open and Close have nothing to do: the store lives as long as the client.
func (s *orderedStore) Open()  {}
func (s *orderedStore) Close() {}

// Put stores pk under key (a publish as a copy, see Get); a key put
// again keeps its place.
func (s *orderedStore) Put(key string, pk packets.ControlPacket) {
	pk = clonePublish(pk)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.msgs[key]; ok {
		s.msgs[key] = storedPacket{pk: pk, num: old.num}
		return
	}
	s.next++
	s.msgs[key] = storedPacket{pk: pk, num: s.next}
	s.order = append(s.order, orderedKey{key: key, num: s.next})
}

// Get returns the packet stored under key, or nil; a publish is a copy.
// Put keeps a copy of a publish and Get hands out copies (payloads
// shared, never written), so that paho and the store never share one:
// paho writes fields of a publish as it sends it (its length) and sets
// the DUP flag of each one it reads back to send again after a
// reconnection, and it reads the store while a publish made just after
// the connection came up may be on its way out.
func (s *orderedStore) Get(key string) packets.ControlPacket {
	s.mu.Lock()
	pk := s.msgs[key].pk
	s.mu.Unlock()
	return clonePublish(pk)
}

// clonePublish returns a copy of pk when it is a publish, pk otherwise.
func clonePublish(pk packets.ControlPacket) packets.ControlPacket {
	if p, ok := pk.(*packets.PublishPacket); ok {
		c := *p
		return &c
	}
	return pk
}

// All returns the stored keys in the order they were first put.
func (s *orderedStore) All() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.msgs))
	for _, k := range s.order {
		if s.msgs[k.key].num == k.num {
			keys = append(keys, k.key)
		}
	}
	return keys
}

// Del removes key; the order list is compacted once deleted entries make
// up most of it, so it stays proportional to what is stored.
func (s *orderedStore) Del(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.msgs, key)
	for _, ch := range s.gone[key] {
		close(ch)
	}
	delete(s.gone, key)
	if len(s.order) <= 2*len(s.msgs)+64 {
		return
	}
	live := s.order[:0]
	for _, k := range s.order {
		if s.msgs[k.key].num == k.num {
			live = append(live, k)
		}
	}
	clear(s.order[len(live):])
	s.order = live
}

// Reset removes everything. The packets were dropped, not acknowledged:
// their deleted channels stay open.
func (s *orderedStore) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.msgs)
	clear(s.gone)
	s.order = nil
}
