package devices

import (
	"flag"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/telehub/telehub/bridge"
)

var benchCommandDevices = flag.Int("bench-command-devices", 200, "BenchmarkBrokerCommands: devices subscribed to their commands")

// timingCommander is a Commander that notes when each command is
// confirmed.
type timingCommander struct {
	mu        sync.Mutex
	sent      map[string]time.Time
	latencies []time.Duration
	confirmed chan struct{}
}

func (*timingCommander) Connected(string) {}

func (c *timingCommander) Answer(_ string, a bridge.CommandAnswer) error {
	c.mu.Lock()
	if at, ok := c.sent[a.ID]; ok {
		c.latencies = append(c.latencies, time.Since(at))
		delete(c.sent, a.ID)
	}
	c.mu.Unlock()
	c.confirmed <- struct{}{}
	return nil
}

// BenchmarkBrokerCommands sends b.N commands round robin to devices
// subscribed to their commands over MQTT 3.1.1, each acknowledging every
// command publish at once, and reports commands confirmed per second and
// the latency from SendCommand to the confirmation (the PUBACK read).
// Commands are sent as fast as SendCommand returns, at most 1 000
// unconfirmed at a time.
//
//	go test ./devices -run '^$' -bench BrokerCommands -benchtime 100000x
func BenchmarkBrokerCommands(b *testing.B) {
	cmd := &timingCommander{sent: make(map[string]time.Time), confirmed: make(chan struct{}, b.N)}
	br := startMQTTBroker(b, func(c *BrokerConfig) { c.Commands = cmd })
	n := *benchCommandDevices
	var wg sync.WaitGroup
	for i := range n {
		dev, _ := dialRaw(b, br.Addr().String(), rawConnect{version: 4, id: benchDevice(i), clean: true})
		dev.subscribe(1, commandsTopic(benchDevice(i)))
		dev.nextOf(packets.Suback)
		wg.Add(1)
		go func() {
			defer wg.Done()
			acknowledgeCommands(dev)
		}()
	}
	defer wg.Wait()
	window := make(chan struct{}, 1000)
	go func() {
		for range cmd.confirmed {
			<-window
		}
	}()
	defer close(cmd.confirmed)

	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		window <- struct{}{}
		device := benchDevice(i % n)
		c := &bridge.Command{ID: fmt.Sprintf("%016x", i), Device: device, Name: "ping", Expires: start.Add(time.Hour)}
		cmd.mu.Lock()
		cmd.sent[c.ID] = time.Now()
		cmd.mu.Unlock()
		if !br.SendCommand(device, c) {
			b.Fatalf("command %d not published", i)
		}
	}
	for range cap(window) {
		window <- struct{}{} // every command confirmed
	}
	elapsed := time.Since(start)
	b.StopTimer()

	cmd.mu.Lock()
	lat := slices.Clone(cmd.latencies)
	cmd.mu.Unlock()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commands/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	if err := br.Shutdown(b.Context()); err != nil {
		b.Errorf("Shutdown: %v", err)
	}
}

func benchDevice(i int) string { return fmt.Sprintf("bench-%04d", i) }

// acknowledgeCommands answers every publish dev gets with a PUBACK until
// its connection ends.
func acknowledgeCommands(dev *rawMQTT) {
	for {
		pk, err := dev.read()
		if err != nil {
			return
		}
		if pk.FixedHeader.Type == packets.Publish {
			ack := []byte{packets.Puback << 4, 2, byte(pk.PacketID >> 8), byte(pk.PacketID)}
			if _, err := dev.conn.Write(ack); err != nil {
				return
			}
		}
	}
}
