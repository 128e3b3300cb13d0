package clustertest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	firmwaresim "github.com/telehub/telehub/firmware-sim"
)

// simAt is a simulator configuration for devices named prefix…: over
// WebSocket to the hub at hub, or over MQTT to broker when broker is set.
// After the run it verifies hub and then the replicas. An MQTT device's
// reading is acknowledged by the broker before any hub stores it, so then
// hub too is verified as a replica: the check waits for it to catch up.
func simAt(hub, broker, prefix string, devices int, replicas ...string) firmwaresim.Config {
	cfg := firmwaresim.Config{
		Hub: hub, Transport: firmwaresim.TransportWS, IDPrefix: prefix, Devices: devices, Rate: 10,
		Verify: true, VerifyHubs: replicas,
	}
	if broker != "" {
		cfg.MQTT, cfg.Transport = broker, firmwaresim.TransportMQTT
		cfg.Verify, cfg.VerifyHubs = false, append([]string{hub}, replicas...)
	}
	return cfg
}

// urls returns the base URLs of hubs.
func urls(hubs ...*hubProc) []string {
	var u []string
	for _, h := range hubs {
		u = append(u, h.url())
	}
	return u
}

// watchAll opens an SSE and a WebSocket watcher on each hub.
func watchAll(t *testing.T, c *cluster) []*watcher {
	t.Helper()
	var ws []*watcher
	for _, h := range c.hubs {
		ws = append(ws, startWatcher(t, h.node+"-sse", h.url(), false), startWatcher(t, h.node+"-ws", h.url(), true))
	}
	return ws
}

// allSeen waits until every watcher received at least n events.
func allSeen(t *testing.T, ws []*watcher, n int) {
	t.Helper()
	waitFor(t, "readings on every watcher", func() bool {
		for _, w := range ws {
			if w.count() < n {
				return false
			}
		}
		return true
	})
}

// requireEachOnce waits until each watcher has seen every reading of want
// exactly once.
func requireEachOnce(t *testing.T, ws []*watcher, want map[string]int) {
	t.Helper()
	for _, w := range ws {
		waitUntil(t, "watcher "+w.name+" to see every reading once", func() string {
			evs, _ := w.snapshot()
			return exactlyOnce(evs, want)
		})
	}
}

// TestClusterEveryWatcherSeesEveryReading runs three hubs on one broker:
// MQTT devices on the broker, WebSocket devices on hub A and on hub B, an
// SSE and a WebSocket watcher on every hub. Every hub stores every reading
// once (the simulators verify each hub), /v1/events of the three hold the
// same set, every watcher sees every reading exactly once, and every event
// names its origin.
func TestClusterEveryWatcherSeesEveryReading(t *testing.T) {
	c := startCluster(t, 3)
	a, b, hc := c.hubs[0], c.hubs[1], c.hubs[2]
	watchers := watchAll(t, c)
	sims := []*sim{
		startSim(t, simAt(a.url(), c.brokerURL(), "mq-", 6, urls(b, hc)...)),
		startSim(t, simAt(a.url(), "", "wsa-", 3, urls(b, hc)...)),
		startSim(t, simAt(b.url(), "", "wsb-", 3, urls(a, hc)...)),
	}
	allSeen(t, watchers, 600)
	for _, s := range sims {
		requireVerified(t, s.finish())
	}
	want := c.sameReadings()
	requireEachOnce(t, watchers, want)
	for _, h := range c.hubs {
		for _, ev := range readEvents(t, h.url(), telemetryFilter) {
			if !strings.Contains(ev.Data.Origin, ":") {
				t.Fatalf("hub %s: event %s of %s has origin %q, want node:id", h.node, ev.ID, ev.key(), ev.Data.Origin)
			}
		}
	}
}

// TestClusterSimulatorVerifiesEachHub runs firmware-sim (the command) with
// dropped connections, its WebSocket devices on hub A and its MQTT devices
// on the broker, and --verify-hub for each hub: every hub holds every
// reading the simulator sent, 0 missing and 0 duplicates.
func TestClusterSimulatorVerifiesEachHub(t *testing.T) {
	c := startCluster(t, 3)
	a, b, hc := c.hubs[0], c.hubs[1], c.hubs[2]
	out, err := exec.Command(binary(t, "cmd/firmware-sim"),
		"--hub", a.url(), "--mqtt", c.brokerURL(), "--transport", "mixed", "--devices", "10", "--rate", "20",
		"--duration", "3s", "--drop-rate", "0.02", "--heartbeat", "-1s", "--drain-timeout", "30s",
		"--verify-hub", a.url(), "--verify-hub", b.url(), "--verify-hub", hc.url(), "--json", "--quiet",
	).Output()
	if err != nil {
		t.Fatalf("firmware-sim: %v\n%s", err, out)
	}
	var sum firmwaresim.Summary
	if err := json.Unmarshal(out, &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, out)
	}
	if sum.Drops == 0 {
		t.Fatalf("no connection dropped: %s", out)
	}
	requireVerified(t, &sum)
	if len(sum.VerifyHubs) != 3 {
		t.Fatalf("verified %d hubs, want 3: %s", len(sum.VerifyHubs), out)
	}
	t.Logf("sent %d, acked %d, resent %d, drops %d; %d readings verified on each of 3 hubs",
		sum.Sent, sum.Acked, sum.Resent, sum.Drops, sum.VerifyHubs[0].Expected)
}
