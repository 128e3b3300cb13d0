package clustertest

import (
	"context"
	"testing"
)

// TestClusterHubKilledCatchesUp SIGKILLs hub B in the middle of a run and
// restarts it once the devices have stopped: as soon as its /readyz says
// 200 it holds every reading acknowledged by any hub (and the broker)
// during its absence, exactly once, and its watchers, resuming with their
// last ids, have seen every reading once: no gap.
func TestClusterHubKilledCatchesUp(t *testing.T) {
	c := startCluster(t, 3)
	a, b, hc := c.hubs[0], c.hubs[1], c.hubs[2]
	onB := []*watcher{startWatcher(t, "b-sse", b.url(), false), startWatcher(t, "b-ws", b.url(), true)}
	onA := startWatcher(t, "a-sse", a.url(), false)
	sims := []*sim{
		startSim(t, simAt(a.url(), c.brokerURL(), "mq-", 6, hc.url())),
		startSim(t, simAt(a.url(), "", "wsa-", 3, hc.url())),
		startSim(t, simAt(hc.url(), "", "wsc-", 3, a.url())),
	}
	allSeen(t, onB, 300)
	b.kill()
	seen := onA.count()
	waitFor(t, "readings while hub B is down", func() bool { return onA.count() >= seen+600 })
	for _, s := range sims {
		requireVerified(t, s.finish())
	}

	b.start()
	b.waitReady()
	for _, s := range sims { // at once: /readyz 200 means caught up
		res, err := s.s.VerifyHub(context.Background(), b.url())
		if err != nil || !res.OK {
			t.Fatalf("hub B right after /readyz 200: %+v, %v", res, err)
		}
	}
	want := c.sameReadings()
	requireEachOnce(t, onB, want)
	for _, w := range onB {
		if _, resets := w.snapshot(); len(resets) != 0 {
			t.Fatalf("watcher %s resumed on its own hub with a reset %+v", w.name, resets[0].Data)
		}
	}
}

// TestClusterBrokerRestart stops the broker in the middle of a run (a
// clean stop) and starts it again while hub C is down: every running hub's
// /readyz goes 503 and back to 200, persistence keeps C's session and what
// was queued for it across the broker's restart, and no reading
// acknowledged by a hub or the broker is missing on any hub.
func TestClusterBrokerRestart(t *testing.T) {
	c := startCluster(t, 3)
	a, b, hc := c.hubs[0], c.hubs[1], c.hubs[2]
	watchers := []*watcher{
		startWatcher(t, "a-sse", a.url(), false), startWatcher(t, "b-ws", b.url(), true),
		startWatcher(t, "c-sse", hc.url(), false),
	}
	sims := []*sim{
		startSim(t, simAt(a.url(), c.brokerURL(), "mq-", 6, urls(b, hc)...)),
		startSim(t, simAt(a.url(), "", "wsa-", 3, urls(b, hc)...)),
	}
	allSeen(t, watchers, 300)
	hc.kill()
	seen := watchers[0].count()
	waitFor(t, "readings queued for hub C", func() bool { return watchers[0].count() >= seen+200 })
	c.broker.Stop()
	for _, h := range []*hubProc{a, b} {
		waitFor(t, "hub "+h.node+" to answer /readyz with 503 without its broker", func() bool { return !h.ready() })
	}
	seen = watchers[0].count()
	waitFor(t, "WebSocket readings on hub A while the broker is down", func() bool { return watchers[0].count() >= seen+100 })
	c.broker.Restart(t)
	c.waitReady()
	allSeen(t, watchers[:2], watchers[0].count()+300)
	hc.start()
	hc.waitReady()
	for _, s := range sims {
		requireVerified(t, s.finish())
	}
	requireEachOnce(t, watchers, c.sameReadings())
}
