package devices

import (
	"context"
	"flag"
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/mosquittotest"
)

var (
	benchDrainMessages = flag.Int("drain-messages", 20000, "BenchmarkExternalDrain: messages queued in the broker before the hub connects")
	benchDrainCommit   = flag.Duration("drain-commit", 20*time.Millisecond, "BenchmarkExternalDrain: simulated commit time")
	benchDrainInflight = flag.Int("drain-inflight", 1000, "BenchmarkExternalDrain: Mosquitto's max_inflight_messages")
)

// groupCommitBridge is an Ingester that stands for the store's group
// commit: the done callbacks submitted while a commit "runs" (a fixed
// duration) are called together when the next one ends, in order.
type groupCommitBridge struct {
	commit time.Duration
	done   chan struct{}

	mu      sync.Mutex
	pending []func(bridge.Result)
	commits int
	writes  int
}

func newGroupCommitBridge(commit time.Duration) *groupCommitBridge {
	return &groupCommitBridge{commit: commit, done: make(chan struct{})}
}

func (g *groupCommitBridge) Telemetry(_ bridge.Input, _ bridge.Payload, done func(bridge.Result)) error {
	g.mu.Lock()
	g.pending = append(g.pending, done)
	g.mu.Unlock()
	return nil
}

func (g *groupCommitBridge) Reject(bridge.Input, error) bridge.Rejection { return bridge.Rejection{} }

func (g *groupCommitBridge) Pace(string, time.Time) time.Duration { return 0 }

// run is the "writer": it takes what is pending, spends commit on it, and
// releases it, until stop is closed.
func (g *groupCommitBridge) run(stop <-chan struct{}) {
	defer close(g.done)
	t := time.NewTicker(g.commit)
	defer t.Stop()
	var batch []func(bridge.Result)
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		for _, d := range batch {
			d(bridge.Result{})
		}
		g.mu.Lock()
		if len(batch) > 0 {
			g.commits++
			g.writes += len(batch)
		}
		batch, g.pending = g.pending, batch[:0]
		g.mu.Unlock()
	}
}

// BenchmarkExternalDrain measures how fast the external client drains a
// backlog the broker queued for its session (a replica catching up): the
// messages are published while the hub is away, then the hub connects and
// each message is acknowledged after a simulated group commit.
func BenchmarkExternalDrain(b *testing.B) {
	m := mosquittotest.Start(b, fmt.Sprintf("max_inflight_messages %d\nmax_queued_messages 0\n", *benchDrainInflight))
	for b.Loop() {
		benchDrain(b, m, *benchDrainMessages)
	}
}

func benchDrain(b *testing.B, m *mosquittotest.Broker, n int) {
	id := fmt.Sprintf("drain-%d", mqttClientSeq.Add(1))
	cfg := ExternalConfig{
		URL: "tcp://" + m.Addr, ClientID: id, Presence: newFakePresence(),
		ConnectTimeout: 2 * time.Second, Logger: mqttDiscardLogger(),
	}
	// The first connection creates the persistent session.
	cfg.Bridge = &fakeBridge{discard: true}
	e := mustStartExternal(b, cfg)
	if err := e.Shutdown(context.Background()); err != nil {
		b.Fatal(err)
	}
	publishBacklog(b, m, n)

	g := newGroupCommitBridge(*benchDrainCommit)
	stop := make(chan struct{})
	go g.run(stop)
	cfg.Bridge = g
	start := time.Now()
	e = mustStartExternal(b, cfg)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		g.mu.Lock()
		w := g.writes
		g.mu.Unlock()
		if w >= n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d messages stored after 2 min", w, n)
		}
		time.Sleep(time.Millisecond)
	}
	el := time.Since(start)
	close(stop)
	<-g.done
	if err := e.Shutdown(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/el.Seconds(), "msgs/s")
	b.ReportMetric(float64(g.writes)/float64(g.commits), "writes/commit")
}

func mustStartExternal(b *testing.B, cfg ExternalConfig) *External {
	b.Helper()
	e, err := NewExternal(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitGuard)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		b.Fatal(err)
	}
	return e
}

// publishBacklog publishes n QoS 1 telemetry messages of 100 devices and
// waits for the broker's acknowledgements.
func publishBacklog(b *testing.B, m *mosquittotest.Broker, n int) {
	b.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + m.Addr).SetClientID(fmt.Sprintf("pub-%d", mqttClientSeq.Add(1)))
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(waitGuard) || tok.Error() != nil {
		b.Fatalf("publisher connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	toks := make([]paho.Token, 0, 1000)
	for i := range n {
		p := fmt.Sprintf(`{"temp":%d,"hum":40,"seq":%d}`, i%50, i/100+1)
		toks = append(toks, c.Publish(fmt.Sprintf("devices/d%d/telemetry", i%100), 1, false, p))
		if len(toks) == cap(toks) || i == n-1 {
			for _, t := range toks {
				if !t.WaitTimeout(waitGuard) || t.Error() != nil {
					b.Fatalf("publish: %v", t.Error())
				}
			}
			toks = toks[:0]
		}
	}
}
