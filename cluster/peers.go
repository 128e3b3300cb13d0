package cluster

import "sync"

// peerDevice is a WebSocket device online through a peer hub.
type peerDevice struct {
	node    string
	session uint64
}

// peerMap says which WebSocket devices are online through which peer, as
// their forwarded presence changes said since this hub started.
type peerMap struct {
	mu  sync.Mutex
	via map[string]peerDevice // device id → where it is online
}

func (m *peerMap) get(device string) (peerDevice, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.via[device]
	return d, ok
}

func (m *peerMap) set(device string, d peerDevice) {
	m.mu.Lock()
	m.via[device] = d
	m.mu.Unlock()
}

// drop forgets device if it is still online through node.
func (m *peerMap) drop(device, node string) {
	m.mu.Lock()
	if m.via[device].node == node {
		delete(m.via, device)
	}
	m.mu.Unlock()
}

// of returns the devices online through node.
func (m *peerMap) of(node string) map[string]peerDevice {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]peerDevice)
	for id, d := range m.via {
		if d.node == node {
			out[id] = d
		}
	}
	return out
}
