package devices

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
)

// heapBytes is the heap the program's live objects take, measured after a
// collection.
func heapBytes() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// The exhaustion attack of a hostile client on the embedded broker:
// persistent sessions that never come back and live subscribers that
// never read, all subscribed at QoS 1 to what an attacker floods with
// large messages. While it runs, the heap stays within the queued-bytes
// limit plus a fixed allowance, and a well-behaved device's readings keep
// being acknowledged.
func TestBrokerExhaustionAttack(t *testing.T) {
	if testing.Short() {
		t.Skip("attack test")
	}
	const (
		parked    = 20  // persistent sessions, disconnected
		sinks     = 20  // live subscribers that never read
		floods    = 300 // attack messages
		floodSize = 60 << 10
		queueMax  = 16 << 20 // MaxQueuedBytesTotal of the test
		allowance = 48 << 20 // connections, buffers, the test's own clients
	)
	cb := &countingBridge{done: make(chan struct{}), want: -1}
	b := startMQTTBroker(t, func(c *BrokerConfig) {
		c.Bridge = cb
		c.Limits.MaxQueuedBytesTotal = queueMax
	})
	addr := b.Addr().String()
	for i := range parked {
		persistentSubscriber(t, b, fmt.Sprintf("parked-%d", i), "devices/dev-p/telemetry/#")
	}
	for i := range sinks {
		c, _ := dialRaw(t, addr, rawConnect{version: 4, id: fmt.Sprintf("sink-%d", i), clean: true})
		c.subscribe(1, "#")
		c.nextOf(packets.Suback) // and never reads again
	}
	good := mustDialMQTT(t, addr, func(o *paho.ClientOptions) { o.SetClientID("good") })
	attacker := mustDialMQTT(t, addr, func(o *paho.ClientOptions) { o.SetClientID("attacker") })

	base := heapBytes()
	peak := base
	flood := strings.Repeat("x", floodSize)
	for i := range floods {
		attacker.publish(t, "devices/dev-p/telemetry/blob", 1, flood)
		good.publish(t, "devices/good/telemetry", 1, fmt.Sprintf(`{"n":%d}`, i)) // waits for its PUBACK
		if i%25 == 24 {
			peak = max(peak, heapBytes())
		}
	}
	peak = max(peak, heapBytes())
	t.Logf("heap %d MiB before, peak %d MiB during the attack; %v messages dropped",
		base>>20, peak>>20, b.dropped())
	if peak > base+queueMax+allowance {
		t.Fatalf("heap grew by %d MiB, over the bound of %d MiB", (peak-base)>>20, (queueMax+allowance)>>20)
	}
	if got := cb.n.Load(); got != 2*floods {
		t.Fatalf("%d readings ingested, want %d", got, 2*floods)
	}
	if b.dropped() == 0 {
		t.Fatal("nothing counted as dropped")
	}
}
