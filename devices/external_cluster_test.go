package devices

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/mosquittotest"
)

// fakePeers takes the messages of telehub/c1/ and records the calls.
type fakePeers struct {
	mu        sync.Mutex
	connected int
	rejoined  int
	messages  []string
	acked     []string
}

func (p *fakePeers) Filters() map[string]byte { return map[string]byte{"telehub/c1/#": 1} }
func (p *fakePeers) Will() (string, []byte)   { return "telehub/c1/presence/n1", []byte("offline") }

func (p *fakePeers) Connected() {
	p.mu.Lock()
	p.connected++
	p.mu.Unlock()
}

func (p *fakePeers) Rejoined() {
	p.mu.Lock()
	p.rejoined++
	p.mu.Unlock()
}

// rejoins returns how many times Rejoined was called.
func (p *fakePeers) rejoins() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rejoined
}

func (p *fakePeers) Message(topic string, payload []byte, done func(bridge.Result)) bool {
	if len(topic) < 10 || topic[:10] != "telehub/c1" {
		return false
	}
	p.mu.Lock()
	p.messages = append(p.messages, topic+" "+string(payload))
	p.mu.Unlock()
	done(bridge.Result{})
	return true
}

func (p *fakePeers) Acked(topic string, payload []byte) {
	p.mu.Lock()
	p.acked = append(p.acked, topic+" "+string(payload))
	p.mu.Unlock()
}

func (p *fakePeers) state() (connected int, messages, acked []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.connected, append([]string(nil), p.messages...), append([]string(nil), p.acked...)
}

// In a cluster the client subscribes to the cluster's topics too, hands
// their messages to the cluster (not to the device path), acknowledges
// them when the cluster says so and tells it; it publishes for it.
func TestExternalPeers(t *testing.T) {
	m := mosquittotest.Start(t, "")
	peers := &fakePeers{}
	e, fb, _, _ := startExternal(t, m, func(c *ExternalConfig) { c.Peers = peers })
	waitFor(t, "Connected once for each of the two connections", func() bool {
		n, _, _ := peers.state()
		return n == 2
	})
	if tok := e.PublishPeers("telehub/c1/ws/n2/d1", false, []byte("m1")); !tok.WaitTimeout(waitGuard) || tok.Error() != nil {
		t.Fatalf("PublishPeers: %v", tok.Error())
	}
	deadline := time.Now().Add(waitGuard)
	for {
		_, msgs, acked := peers.state()
		if len(msgs) == 1 && len(acked) == 1 {
			if msgs[0] != "telehub/c1/ws/n2/d1 m1" || acked[0] != msgs[0] {
				t.Fatalf("messages %q, acked %q", msgs, acked)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster message was not handed over and acknowledged: %q %q", msgs, acked)
		}
		time.Sleep(10 * time.Millisecond)
	}
	fb.noWrite(t)
}

func TestExternalPeersExcludeShareGroup(t *testing.T) {
	cfg := ExternalConfig{URL: "tcp://127.0.0.1:1883", ClientID: "hub", Bridge: &fakeBridge{}, Presence: newFakePresence(),
		ShareGroup: "g", Peers: &fakePeers{}}
	if _, err := NewExternal(cfg); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("NewExternal: %v, want ErrInvalidConfig", err)
	}
}

// A cluster message is acknowledged while the device connection waits on
// the store: it goes through a connection of its own, under the hub's
// client id with PeerClientSuffix.
func TestExternalPeerPublishNotBehindDeviceTraffic(t *testing.T) {
	m := mosquittotest.Start(t, "")
	block := make(chan struct{})
	e, fb, _, _ := startExternal(t, m, func(c *ExternalConfig) {
		c.Peers = &fakePeers{}
		c.Bridge.(*fakeBridge).block = block
	})
	defer close(block) // before Shutdown (a cleanup): the handler returns
	device := mustDialMQTT(t, m.Addr, nil)
	for i := range 20 {
		device.publish(t, "devices/d1/telemetry", 1, fmt.Sprintf(`{"temp":%d}`, i))
	}
	waitFor(t, "the device connection's handler waiting on the store", func() bool {
		fb.mu.Lock()
		defer fb.mu.Unlock()
		return fb.blocked == 1
	})
	tok := e.PublishPeers("telehub/c1/ws/n1/d2", false, []byte("m1"))
	if !tok.WaitTimeout(waitGuard) || tok.Error() != nil {
		t.Fatalf("cluster message not acknowledged while the device connection waits: %v", tok.Error())
	}
}

// The will rides on the connection that publishes the cluster's messages,
// after everything the hub forwarded on it: it is sent when that
// connection is cut, not the device connection, and the hub announces
// itself again when that connection is back.
func TestExternalPeersWillOnPublishingConnection(t *testing.T) {
	m := mosquittotest.Start(t, "")
	peers := &fakePeers{}
	e, _, _, _ := startExternal(t, m, func(c *ExternalConfig) { c.Peers = peers })
	waitFor(t, "both connections up", func() bool {
		n, _, _ := peers.state()
		return n == 2
	})
	const willTopic = "telehub/c1/presence/n1"
	seen := make(chan string, 8)
	watcher := mustDialMQTT(t, m.Addr, nil)
	if tok := watcher.Subscribe(willTopic, 1, func(_ paho.Client, msg paho.Message) {
		seen <- string(msg.Payload())
	}); !tok.WaitTimeout(waitGuard) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	// untilBarrier publishes a barrier on the will's topic and returns
	// what the watcher got before it: a will the broker sent when it cut
	// a connection comes before the barrier.
	untilBarrier := func() []string {
		t.Helper()
		if tok := watcher.Publish(willTopic, 1, false, "barrier"); !tok.WaitTimeout(waitGuard) || tok.Error() != nil {
			t.Fatalf("publish barrier: %v", tok.Error())
		}
		var got []string
		for {
			select {
			case p := <-seen:
				if p == "barrier" {
					return got
				}
				got = append(got, p)
			case <-time.After(waitGuard):
				t.Fatalf("no barrier; got %q", got)
			}
		}
	}
	opts := e.client.OptionsReader()
	id := opts.ClientID()

	// Taking the device connection's client id over cuts it: no will.
	n, _, _ := peers.state()
	mustDialMQTT(t, m.Addr, func(o *paho.ClientOptions) { o.SetClientID(id) })
	waitFor(t, "the device connection back", func() bool {
		now, _, _ := peers.state()
		return now > n && e.Connected()
	})
	if got := untilBarrier(); len(got) != 0 {
		t.Fatalf("cutting the device connection sent %q", got)
	}
	if n := peers.rejoins(); n != 0 {
		t.Fatalf("Rejoined called %d times before the publishing connection was lost", n)
	}

	// Taking the publishing connection's over sends the will, and the
	// cluster is told of the new connection, to announce the hub again, and
	// that it rejoined, to state its devices' presence again.
	n, _, _ = peers.state()
	mustDialMQTT(t, m.Addr, func(o *paho.ClientOptions) { o.SetClientID(id + PeerClientSuffix) })
	waitFor(t, "the publishing connection back", func() bool {
		now, _, _ := peers.state()
		return now > n && e.Connected()
	})
	if got := untilBarrier(); len(got) != 1 || got[0] != "offline" {
		t.Fatalf("cutting the publishing connection sent %q, want the will", got)
	}
	if n := peers.rejoins(); n != 1 {
		t.Fatalf("Rejoined called %d times after the publishing connection came back, want once", n)
	}
}
