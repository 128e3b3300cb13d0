package clustertest

import (
	"bufio"
	"fmt"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/telehub/telehub/internal/mosquittotest"
)

// brokerConf is the test broker's configuration beyond a listener:
// persistence on (in the test's temp dir), so that a restart keeps the
// sessions of the hubs and what was queued for them, and no queue limit,
// so that a hub that is down for the whole test loses nothing. It keeps the
// user running the test (root would otherwise become "mosquitto", who
// cannot write to the test's temp dir).
const brokerConf = `user %s
persistence true
persistence_location %s/
autosave_interval 3600
max_queued_messages 0
max_inflight_messages 100
`

// cluster is one broker and the hubs of one cluster on it.
type cluster struct {
	t      *testing.T
	name   string
	broker *mosquittotest.Broker
	hubs   []*hubProc
}

// startCluster starts a persistent Mosquitto and n hubs ("a", "b", …) of
// cluster "test", each started with extra flags after the cluster ones,
// and waits until every hub is ready.
func startCluster(t *testing.T, n int, extra ...string) *cluster {
	t.Helper()
	return startHubs(t, n, "test", extra...)
}

// startHubs starts a persistent Mosquitto and n hubs ("a", "b", …) of
// cluster name (none: hubs that only share the broker), each started with
// extra flags after the broker and cluster ones, and waits until every
// hub is ready.
func startHubs(t *testing.T, n int, name string, extra ...string) *cluster {
	t.Helper()
	mosquittotest.Binary(t) // skip before building anything
	c := &cluster{t: t, name: name}
	c.broker = mosquittotest.Start(t, fmt.Sprintf(brokerConf, currentUser(t), filepath.Clean(t.TempDir())))
	for i := range n {
		node := string(rune('a' + i))
		args := []string{"--mqtt-broker", c.brokerURL()}
		if name != "" {
			args = append(args, "--cluster", name, "--node-id", node)
		}
		c.hubs = append(c.hubs, newHubProc(t, node, append(args, extra...)))
	}
	t.Cleanup(c.stop)
	for _, h := range c.hubs {
		h.start()
	}
	c.waitReady()
	return c
}

// brokerURL is the broker's URL for hubs and MQTT devices.
func (c *cluster) brokerURL() string { return "tcp://" + c.broker.Addr }

// waitReady waits until every running hub answers /readyz with 200.
func (c *cluster) waitReady() {
	c.t.Helper()
	for _, h := range c.hubs {
		if h.cmd != nil {
			h.waitReady()
		}
	}
}

// stop stops every hub, showing their cluster metrics and logs when the
// test failed.
func (c *cluster) stop() {
	if c.t.Failed() {
		for _, h := range c.hubs {
			if h.cmd != nil {
				c.t.Logf("hub %s cluster metrics:\n%s", h.node, clusterMetrics(h.url()))
			}
		}
	}
	for _, h := range c.hubs {
		h.stop()
	}
	if c.t.Failed() {
		for _, h := range c.hubs {
			c.t.Logf("hub %s log:\n%s", h.node, h.logTail(40))
		}
	}
}

// clusterMetrics returns the telehub_cluster_ samples of a hub's /metrics.
func clusterMetrics(hub string) string {
	resp, err := probeClient.Get(hub + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "telehub_cluster_") && !strings.Contains(line, "_bucket") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// currentUser is the name of the user running the test.
func currentUser(t *testing.T) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}
