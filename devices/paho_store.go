package devices

import (
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
	return &orderedStore{msgs: make(map[string]storedPacket)}
}

// Open and Close have nothing to do: the store lives as long as the client.
func (s *orderedStore) Open()  {}
func (s *orderedStore) Close() {}

// Put stores pk under key; a key put again keeps its place.
func (s *orderedStore) Put(key string, pk packets.ControlPacket) {
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

// Get returns the packet stored under key, or nil.
func (s *orderedStore) Get(key string) packets.ControlPacket {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.msgs[key].pk
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

// Reset removes everything.
func (s *orderedStore) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.msgs)
	s.order = nil
}
