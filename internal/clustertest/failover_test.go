package clustertest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestClusterWSDeviceMovesHub connects WebSocket devices through a proxy
// to hub A, freezes A (readings sent to it stay unacked), kills it and
// sends the devices' new connections to hub B, as a load balancer fails
// over: the devices resend what A had not acked. Readings A acked but had
// not forwarded yet reach the others once A is back; then every hub
// stores every reading exactly once.
func TestClusterWSDeviceMovesHub(t *testing.T) {
	c := startCluster(t, 3)
	a, b, hc := c.hubs[0], c.hubs[1], c.hubs[2]
	lb := startProxy(t, a.addr)
	onC := startWatcher(t, "c-sse", hc.url(), false)
	cfg := simAt(lb.url(), "", "mv-", 6, b.url(), hc.url())
	cfg.Verify = false // not through the proxy: on B and C once A is back, then on A
	s := startSim(t, cfg)
	waitFor(t, "readings before the move", func() bool { return onC.count() >= 400 })
	a.freeze()
	sent := lb.upBytes()
	waitFor(t, "readings sent to the frozen hub A", func() bool { return lb.upBytes() >= sent+4096 })
	lb.setTarget(b.addr)
	a.kill()
	seen := onC.count()
	waitFor(t, "readings through hub B", func() bool { return onC.count() >= seen+400 })
	a.start()
	sum := s.finish()
	for _, v := range sum.VerifyHubs {
		if !v.OK || v.Expected == 0 {
			t.Fatalf("verify at %s: %+v", v.Hub, *v.VerifyResult)
		}
	}
	if sum.Unacked != 0 || sum.Resent == 0 {
		t.Fatalf("readings %d, acked %d, unacked %d, resent %d: want every reading acked, some resent after the move",
			sum.Readings, sum.Acked, sum.Unacked, sum.Resent)
	}
	verifiedOn(t, s, a)
	c.sameReadings()
	t.Logf("readings %d, resent %d, disconnects %d", sum.Readings, sum.Resent, sum.Disconnects)
}

// verifiedOn waits until hub h holds every reading of the finished
// simulator run s exactly once.
func verifiedOn(t *testing.T, s *sim, h *hubProc) {
	t.Helper()
	waitUntil(t, "hub "+h.node+" to hold every reading once", func() string {
		res, err := s.s.VerifyHub(context.Background(), h.url())
		switch {
		case err != nil:
			return err.Error()
		case !res.OK || res.Expected == 0:
			return fmt.Sprintf("%+v", *res)
		}
		return ""
	})
}

// resumeMargin is the --cluster-resume-margin of the failover test.
const resumeMargin = 2 * time.Second

// TestClusterWatcherResumesOnPeer moves an SSE and a WebSocket watcher
// from hub A (killed) to hub B through a proxy, as a load balancer fails
// over: each resumes with the last id A gave it, gets a reset with
// "since", and then misses no reading. The readings it gets twice are
// only those committed within the resume margin before its last event,
// and each is recognizable: the same device and device_seq, and, for a
// reading forwarded between hubs, the same origin.
func TestClusterWatcherResumesOnPeer(t *testing.T) {
	c := startCluster(t, 3, "--cluster-resume-margin", resumeMargin.String())
	a, b, hc := c.hubs[0], c.hubs[1], c.hubs[2]
	lb := startProxy(t, a.addr)
	moving := []*watcher{startWatcher(t, "lb-sse", lb.url(), false), startWatcher(t, "lb-ws", lb.url(), true)}
	sims := []*sim{
		startSim(t, simAt(b.url(), c.brokerURL(), "mq-", 4, hc.url())),
		startSim(t, simAt(b.url(), "", "wsb-", 3, hc.url())),
		startSim(t, simAt(hc.url(), "", "wsc-", 3, b.url())),
	}
	allSeen(t, moving, 400)
	lb.setTarget(b.addr)
	a.kill()
	last := map[*watcher]event{}
	for _, w := range moving {
		evs, _ := w.snapshot()
		last[w] = evs[len(evs)-1]
	}
	waitFor(t, "the watchers to resume on hub B", func() bool {
		for _, w := range moving {
			if _, resets := w.snapshot(); len(resets) == 0 {
				return false
			}
		}
		return true
	})
	allSeen(t, moving, moving[0].count()+400)
	for _, s := range sims {
		requireVerified(t, s.finish())
	}
	want := c.sameReadings() // hubs B and C
	for _, w := range moving {
		checkFailover(t, w, want)
	}
}

// checkFailover checks what a watcher that moved once from one hub to
// another received: one reset with since, every reading of want, and
// repeats only of readings committed within the resume margin before the
// reset, each after the reset and recognizable.
func checkFailover(t *testing.T, w *watcher, want map[string]int) {
	t.Helper()
	waitUntil(t, "watcher "+w.name+" to see every reading", func() string {
		evs, _ := w.snapshot()
		got := counts(evs)
		for k := range want {
			if got[k] == 0 {
				return "missing " + k
			}
		}
		return ""
	})
	evs, resets := w.snapshot()
	if len(resets) != 1 || resets[0].Data.Since == "" {
		t.Fatalf("watcher %s: resets %+v, want one with since", w.name, resets)
	}
	reset := resets[0].At
	first := map[string]event{}
	var lastBefore time.Time
	repeats := 0
	for _, ev := range evs {
		if !ev.At.After(reset) {
			lastBefore = maxTime(lastBefore, eventTime(t, ev))
		}
		f, seen := first[ev.key()]
		if !seen {
			first[ev.key()] = ev
			continue
		}
		repeats++
		if !ev.At.After(reset) || f.At.After(reset) {
			t.Fatalf("watcher %s: %s repeated on one hub (ids %s and %s)", w.name, ev.key(), f.ID, ev.ID)
		}
		if forwarded(ev) && ev.Data.Origin != f.Data.Origin {
			t.Fatalf("watcher %s: %s forwarded between hubs, origins %q and %q", w.name, ev.key(), f.Data.Origin, ev.Data.Origin)
		}
		if ev.Data.Origin == "" {
			t.Fatalf("watcher %s: repeat of %s without origin", w.name, ev.key())
		}
		if bound := lastBefore.Add(-resumeMargin - time.Second); eventTime(t, ev).Before(bound) {
			t.Fatalf("watcher %s: %s (ts %s) repeated though older than the margin before the last event seen (%s)",
				w.name, ev.key(), ev.Data.TS, lastBefore.Format(time.RFC3339Nano))
		}
	}
	t.Logf("watcher %s: %d events, %d repeats after the reset (since %s)", w.name, len(evs), repeats, resets[0].Data.Since)
}

// forwarded reports whether an event is a WebSocket device's reading,
// which one hub commits and forwards to the others with its origin.
func forwarded(ev event) bool { return strings.HasPrefix(ev.Data.Device, "ws") }

// eventTime is an event's ts.
func eventTime(t *testing.T, ev event) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, ev.Data.TS)
	if err != nil {
		t.Fatalf("event %s: ts %q: %v", ev.ID, ev.Data.TS, err)
	}
	return ts
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
