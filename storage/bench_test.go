package storage

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/telehub/telehub/bridge"
)

// BenchmarkGroupCommit measures committing batches of device messages of
// one reading each, through Submit and Done. Every batch after the first
// is committed in exactly one transaction: the writer is held in the last
// Done of the previous batch until the next batch is queued.
func BenchmarkGroupCommit(b *testing.B) {
	for _, fsync := range []bool{true, false} {
		for _, batch := range []int{1, 100, 1000} {
			name := fmt.Sprintf("fsync=%s/batch=%d", map[bool]string{true: "on", false: "off"}[fsync], batch)
			b.Run(name, func(b *testing.B) { benchGroupCommit(b, fsync, batch) })
		}
	}
}

func benchGroupCommit(b *testing.B, fsync bool, batch int) {
	const devices = 1000
	cfg := testConfig(b)
	cfg.NoFsync = !fsync
	var txs atomic.Int64
	cfg.OnCommit = func([]Record) { txs.Add(1) }
	s := openStore(b, cfg)
	names := make([]string, devices)
	for i := range names {
		names[i] = fmt.Sprintf("dev-%d", i)
	}
	var seq uint64
	gate := make(chan struct{})
	committed := make(chan struct{})
	b.ResetTimer()
	for range b.N {
		next := make(chan struct{})
		for j := range batch {
			seq++
			w := withSeq(reading(names[seq%devices], t0, j, "temp"), seq)
			if j == batch-1 {
				held := next
				w.Done = func(r bridge.Result) {
					committed <- struct{}{}
					<-held
				}
			}
			if err := s.Submit(w); err != nil {
				b.Fatal(err)
			}
		}
		close(gate) // release the writer held by the previous batch
		gate = next
		<-committed
	}
	b.StopTimer()
	close(gate)
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "readings/s")
	b.ReportMetric(float64(b.N*batch)/float64(txs.Load()), "writes/tx")
}

// BenchmarkScan measures replay: scanning windows of 1000 records of a
// 100 000-event log with a filter that keeps one topic in four.
func BenchmarkScan(b *testing.B) {
	const n, window = 100_000, 1000
	s := openStore(b, testConfig(b))
	for i := 0; i < n; i += 1000 {
		w := &bridge.Write{Device: "d1", Seen: t0}
		for j := range 1000 {
			w.Events = append(w.Events, bridge.Event{
				Kind: bridge.KindTelemetry, Topic: scanTopics[j%len(scanTopics)],
				Data: []byte(`{"topic":"telemetry/d1/temp","device":"d1","metric":"temp","value":21.5}`),
			})
		}
		submitSync(b, s, w)
	}
	match := topicIs("telemetry/d1/temp")
	b.ReportAllocs()
	b.ResetTimer()
	after := uint64(0)
	for range b.N {
		if after+window > n {
			after = 0
		}
		recs, _, err := s.Scan(after, after+window, match, 0)
		if err != nil || len(recs) != window/4 {
			b.Fatalf("Scan: %d records, %v", len(recs), err)
		}
		after += window
	}
	b.ReportMetric(float64(b.N*window)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkSubmitParallel measures durable ingest with many submitting
// goroutines (as many device connections do) and fsync on: the writer
// batches whatever is queued.
func BenchmarkSubmitParallel(b *testing.B) {
	cfg := testConfig(b)
	cfg.NoFsync = false
	var txs atomic.Int64
	cfg.OnCommit = func([]Record) { txs.Add(1) }
	s := openStore(b, cfg)
	var (
		pending sync.WaitGroup
		dev     atomic.Int64
	)
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		name := fmt.Sprintf("dev-%d", dev.Add(1))
		seq := uint64(0)
		for pb.Next() {
			seq++
			w := withSeq(reading(name, t0, int(seq), "temp"), seq)
			pending.Add(1)
			w.Done = func(bridge.Result) { pending.Done() }
			if err := s.Submit(w); err != nil {
				b.Error(err)
				pending.Done()
			}
		}
	})
	pending.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N)/float64(max(1, txs.Load())), "writes/tx")
}

// BenchmarkIngestHub mimics the hub's ingest at its ceiling: many devices,
// five metrics per device message, fsync on, a deep queue (devices send
// without waiting for acks, so the writer commits large batches) and
// retention active at MaxEvents from the start (every event appended is
// matched by one trimmed).
func BenchmarkIngestHub(b *testing.B) {
	const (
		devices   = 1000
		maxEvents = 50_000
		inFlight  = 4096
	)
	metrics := []string{"temp", "hum", "energy", "door", "pump"}
	cfg := testConfig(b)
	cfg.NoFsync = false
	cfg.MaxEvents = maxEvents
	var txs atomic.Int64
	cfg.OnCommit = func([]Record) { txs.Add(1) }
	s := openStore(b, cfg)
	names := make([]string, devices)
	seqs := make([]uint64, devices)
	for i := range names {
		names[i] = fmt.Sprintf("dev-%d", i)
	}
	slots := make(chan struct{}, inFlight)
	var pending sync.WaitGroup
	submit := func(i int) {
		d := i % devices
		seqs[d]++
		w := withSeq(reading(names[d], t0, i, metrics...), seqs[d])
		slots <- struct{}{}
		pending.Add(1)
		w.Done = func(bridge.Result) { <-slots; pending.Done() }
		if err := s.Submit(w); err != nil {
			b.Fatal(err)
		}
	}
	for i := range maxEvents / len(metrics) {
		submit(i)
	}
	pending.Wait()
	b.ReportAllocs()
	txs.Store(0)
	b.ResetTimer()
	for i := range b.N {
		submit(i)
	}
	pending.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
	b.ReportMetric(float64(b.N)/float64(max(1, txs.Load())), "writes/tx")
}
