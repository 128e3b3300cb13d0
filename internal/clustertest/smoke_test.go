package clustertest

import (
	"context"
	"testing"
	"time"

	firmwaresim "github.com/telehub/telehub/firmware-sim"
)

// TestHubsShareBroker runs two hubs on one persistent Mosquitto, outside
// any cluster: each subscribes to every device topic with a session of
// its own, so each stores every MQTT reading once, and watchers on both
// see every reading once. Hub B is killed in the middle and restarted:
// its session kept what was published meanwhile.
func TestHubsShareBroker(t *testing.T) {
	c := startHubs(t, 2, "")
	a, b := c.hubs[0], c.hubs[1]
	watchers := []*watcher{
		startWatcher(t, "a-sse", a.url(), false),
		startWatcher(t, "b-ws", b.url(), true),
	}
	s := startSim(t, simAt(a.url(), c.brokerURL(), "mq-", 5, b.url()))
	waitFor(t, "readings on hub B", func() bool { return watchers[1].count() >= 100 })
	b.kill()
	seen := watchers[0].count()
	waitFor(t, "readings on hub A while B is down", func() bool { return watchers[0].count() >= seen+100 })
	b.start()
	waitFor(t, "readings on hub B after its restart", func() bool { return watchers[1].count() >= seen+200 })
	sum := s.finish()
	requireVerified(t, sum)
	want := c.sameReadings()
	for _, w := range watchers {
		waitUntil(t, "watcher "+w.name+" to see every reading once", func() string {
			evs, _ := w.snapshot()
			return exactlyOnce(evs, want)
		})
	}
}

// sim is a simulator run in the background.
type sim struct {
	t    *testing.T
	s    *firmwaresim.Sim
	stop context.CancelFunc
	done chan struct{}
	sum  *firmwaresim.Summary
	err  error
}

// startSim starts a simulator run that takes readings until finish.
func startSim(t *testing.T, cfg firmwaresim.Config) *sim {
	t.Helper()
	cfg.Duration = 0
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin, cfg.BackoffMax = 20*time.Millisecond, 300*time.Millisecond
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = -1
	}
	s, err := firmwaresim.New(cfg)
	if err != nil {
		t.Fatalf("firmwaresim.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &sim{t: t, s: s, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.sum, r.err = s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// finish stops the readings, waits for the run to end (acks drained,
// verify done) and returns its summary.
func (r *sim) finish() *firmwaresim.Summary {
	r.t.Helper()
	r.stop()
	<-r.done
	if r.err != nil {
		r.t.Fatalf("simulator run: %v", r.err)
	}
	return r.sum
}

// requireVerified fails the test unless every reading the simulator sent
// was acked and is stored exactly once on every hub it verified.
func requireVerified(t *testing.T, sum *firmwaresim.Summary) {
	t.Helper()
	results := []*firmwaresim.VerifyResult{sum.Verify}
	if sum.Verify == nil {
		results = results[:0]
	}
	for _, v := range sum.VerifyHubs {
		results = append(results, v.VerifyResult)
	}
	if sum.Unacked != 0 || len(results) == 0 {
		t.Fatalf("run: %d readings, %d acked, %d unacked; %d hubs verified", sum.Readings, sum.Acked, sum.Unacked, len(results))
	}
	for i, v := range results {
		if !v.OK || v.Expected == 0 || v.Expected != results[0].Expected {
			t.Fatalf("verify %d of %d: %+v", i+1, len(results), *v)
		}
	}
}
