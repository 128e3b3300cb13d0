package clustertest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
)

// event is one event as /v1/events, SSE and WebSocket watchers give it.
type event struct {
	ID    string    `json:"id"`
	Event string    `json:"event"`
	Data  eventData `json:"data"`
	At    time.Time `json:"-"` // when a watcher received it
}

// eventData is the part of an event's data the tests look at.
type eventData struct {
	Topic      string  `json:"topic"`
	Device     string  `json:"device"`
	Metric     string  `json:"metric"`
	TS         string  `json:"ts"`
	DeviceSeq  *uint64 `json:"device_seq"`
	DeviceBoot string  `json:"device_boot"`
	Origin     string  `json:"origin"`
	// Oldest and Since are those of a reset.
	Oldest string `json:"oldest"`
	Since  string `json:"since"`
}

// key names the reading an event belongs to, and its metric: the same on
// every hub, whichever id each gave it.
func (e *event) key() string {
	seq := "-"
	if e.Data.DeviceSeq != nil {
		seq = fmt.Sprint(*e.Data.DeviceSeq)
	}
	return e.Data.Device + "/" + e.Data.Metric + "@" + e.Data.DeviceBoot + ":" + seq
}

// telemetryFilter is what the tests' watchers and reads select: every
// reading, no presence (each hub sees presence its own way).
const telemetryFilter = "telemetry/#"

// readEvents returns every retained event of the hub at base URL hub that
// matches filter, oldest first.
func readEvents(t *testing.T, hub, filter string) []event {
	t.Helper()
	var all []event
	after := ""
	for {
		q := url.Values{"topic": {filter}, "limit": {"10000"}}
		if after != "" {
			q.Set("after", after)
		}
		page := getEvents(t, hub+"/v1/events?"+q.Encode())
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		after = page[len(page)-1].ID
	}
}

func getEvents(t *testing.T, u string) []event {
	t.Helper()
	resp, err := probeClient.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d %v: %.200s", u, resp.StatusCode, err, body)
	}
	var page []event
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return page
}

// counts returns how many times each reading key occurs in evs.
func counts(evs []event) map[string]int {
	n := make(map[string]int, len(evs))
	for i := range evs {
		n[evs[i].key()]++
	}
	return n
}

// exactlyOnce checks that evs holds every key of want once and nothing
// else, and returns what is wrong ("" when nothing is).
func exactlyOnce(evs []event, want map[string]int) string {
	got := counts(evs)
	var missing, dup, extra []string
	for k := range want {
		switch n := got[k]; {
		case n == 0:
			missing = append(missing, k)
		case n > 1:
			dup = append(dup, fmt.Sprintf("%s×%d", k, n))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			extra = append(extra, k)
		}
	}
	if len(missing)+len(dup)+len(extra) == 0 {
		return ""
	}
	return fmt.Sprintf("%d events for %d readings: %d missing %s, %d repeated %s, %d unknown %s",
		len(evs), len(want), len(missing), few(missing), len(dup), few(dup), len(extra), few(extra))
}

// few lists the first of a set of problems.
func few(s []string) string {
	sort.Strings(s)
	if len(s) > 5 {
		s = append(s[:5:5], "…")
	}
	return "[" + strings.Join(s, " ") + "]"
}

// sameReadings waits until every running hub of c holds the same set of
// readings, each once, and returns that set.
func (c *cluster) sameReadings() map[string]int {
	c.t.Helper()
	var want map[string]int
	waitUntil(c.t, "every hub to hold the same readings, each once", func() string {
		want = nil
		for _, h := range c.hubs {
			if h.cmd == nil {
				continue
			}
			evs := readEvents(c.t, h.url(), telemetryFilter)
			if want == nil {
				want = counts(evs)
				for k, n := range want {
					if n != 1 {
						return fmt.Sprintf("hub %s stores %s %d times", h.node, k, n)
					}
				}
				continue
			}
			if p := exactlyOnce(evs, want); p != "" {
				return "hub " + h.node + ": " + p
			}
		}
		return ""
	})
	return want
}
