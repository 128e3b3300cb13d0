package storage

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// replica is one reading as two hubs of a cluster receive it: hub A at a,
// hub B at b.
type replica struct {
	device string
	seq    uint64
	a, b   time.Time
}

// replicas returns n readings of three devices, one every 100 ms on hub A,
// each received by hub B up to maxLag earlier or later (a reading of a
// WebSocket device reaches one hub first and the other through the
// broker).
func replicas(n int, maxLag time.Duration) []replica {
	rng := rand.New(rand.NewPCG(1, 2))
	devs := []string{"mqtt-1", "ws-on-a", "ws-on-b"}
	out := make([]replica, n)
	for i := range out {
		a := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		lag := time.Duration(rng.Int64N(int64(2*maxLag))) - maxLag
		out[i] = replica{device: devs[i%len(devs)], seq: uint64(i/len(devs) + 1), a: a, b: a.Add(lag)}
	}
	return out
}

// storeReplicas opens a cluster store with margin and commits rs in the order of the
// receive times at.
func storeReplicas(t *testing.T, rs []replica, margin time.Duration, at func(replica) time.Time) *Store {
	t.Helper()
	cfg := testConfig(t)
	cfg.Cluster, cfg.ResumeMargin = true, margin
	s := openStore(t, cfg)
	sorted := slices.Clone(rs)
	slices.SortStableFunc(sorted, func(x, y replica) int { return at(x).Compare(at(y)) })
	// Without a device seq: the hubs' dedup is not what this tests, and
	// hub B receives some readings out of their devices' order.
	for _, r := range sorted {
		submitSync(t, s, reading(r.device, at(r), int(r.seq), "temp"))
	}
	return s
}

type readingKey struct {
	device string
	seq    uint64
}

// readingsOf returns the readings of recs, with the device seq stored as
// the value by reading().
func readingsOf(t *testing.T, recs []Record) []readingKey {
	t.Helper()
	out := make([]readingKey, len(recs))
	for i, r := range recs {
		var dev, metric string
		var v int
		if _, err := fmt.Sscanf(r.Topic, "telemetry/%s", &dev); err != nil {
			t.Fatalf("topic %q: %v", r.Topic, err)
		}
		dev, metric = dev[:len(dev)-len("/temp")], "temp"
		if _, err := fmt.Sscanf(string(r.Data), `{"topic":"telemetry/`+dev+"/"+metric+`","value":%d}`, &v); err != nil {
			t.Fatalf("data %s: %v", r.Data, err)
		}
		out[i] = readingKey{dev, uint64(v)}
	}
	return out
}

// A watcher that read hub A up to some event and resumes on hub B with
// that id misses no reading, and gets again only readings inside the
// margin.
func TestPeerResumeMissesNothing(t *testing.T) {
	const margin, maxLag = 10 * time.Second, 3 * time.Second
	rs := replicas(600, maxLag)
	hubA := storeReplicas(t, rs, margin, func(r replica) time.Time { return r.a })
	hubB := storeReplicas(t, rs, margin, func(r replica) time.Time { return r.b })
	byKey := map[readingKey]replica{}
	for _, r := range rs {
		byKey[readingKey{r.device, r.seq}] = r
	}
	seenA := readingsOf(t, scanAll(t, hubA))
	for _, k := range []int{1, 100, 299, 450, 599, 600} {
		t.Run(fmt.Sprint("after event ", k), func(t *testing.T) {
			last := scanAll(t, hubA)[k-1]
			from := hubA.IDs().FormatAt(last.ID, last.Time)
			_, err := ResumePoint(hubB, from, hubB.LastID())
			var gap *GapError
			if !errors.As(err, &gap) || !gap.Peer() {
				t.Fatalf("ResumePoint on B of A's %q: %v, want a peer's gap", from, err)
			}
			recs, _, err := ReadAfter(hubB, gap.After, hubB.LastID(), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[readingKey]bool{}
			for _, r := range seenA[:k] {
				seen[r] = true
			}
			repeats := 0
			for _, r := range readingsOf(t, recs) {
				if seen[r] {
					repeats++
					if a := byKey[r].a; a.Before(last.Time.Add(-margin - maxLag)) {
						t.Errorf("repeat %v received by A at %v, outside the margin before %v", r, a, last.Time)
					}
				}
				seen[r] = true
			}
			if len(seen) != len(rs) {
				t.Fatalf("after resuming: %d readings seen, want %d", len(seen), len(rs))
			}
			// Readings come every 100 ms: at most the margin and the lag
			// on both sides of it repeat.
			if limit := int((margin + 2*maxLag) / (100 * time.Millisecond)); repeats > limit {
				t.Fatalf("%d repeats, want at most %d", repeats, limit)
			}
		})
	}
}
