package storage

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/metrics"
)

// epochStep is one write of a device in an epoch test and whether it must
// be stored. at is the device time as an offset from t0; noTS: none.
type epochStep struct {
	seq    uint64
	noSeq  bool
	boot   string
	at     time.Duration
	noTS   bool
	stored bool
}

func (st epochStep) write(i int) *bridge.Write {
	w := reading("d1", t0, i, "temp")
	w.Seq, w.HasSeq, w.Boot = st.seq, !st.noSeq, st.boot
	if !st.noTS {
		w.DeviceTime = t0.Add(st.at)
	}
	return w
}

// epochCases are the epoch transitions; dups and restarts are the device
// record's counts at the end, boot its epoch's boot.
var epochCases = []struct {
	name           string
	steps          []epochStep
	dups, restarts uint64
	boot           string
}{
	{name: "same boot resend is a duplicate", steps: []epochStep{
		{seq: 1, boot: "b1", at: 1 * time.Second, stored: true},
		{seq: 2, boot: "b1", at: 2 * time.Second, stored: true},
		{seq: 2, boot: "b1", at: 2 * time.Second},
		{seq: 1, boot: "b1", at: 1 * time.Second},
		{seq: 1, boot: "b1", at: 9 * time.Second}, // a boot names the epoch: a later ts does not matter
	}, dups: 3, boot: "b1"},
	{name: "new boot starts an epoch", steps: []epochStep{
		{seq: 5, boot: "b1", noTS: true, stored: true},
		{seq: 6, boot: "b1", noTS: true, stored: true},
		{seq: 1, boot: "b2", noTS: true, stored: true},
		{seq: 1, boot: "b2", noTS: true},
		{seq: 2, boot: "b2", noTS: true, stored: true},
		{seq: 1, boot: "b3", noTS: true, stored: true},
	}, dups: 1, restarts: 2, boot: "b3"},
	{name: "lower seq with a later ts starts an epoch", steps: []epochStep{
		{seq: 10, at: 1 * time.Second, stored: true},
		{seq: 11, at: 2 * time.Second, stored: true},
		{seq: 1, at: 3 * time.Second, stored: true},
		{seq: 1, at: 3 * time.Second},
		{seq: 2, at: 4 * time.Second, stored: true},
		{seq: 1, at: 3 * time.Second},
		{seq: 1, at: 5 * time.Second, stored: true},
	}, dups: 2, restarts: 2},
	{name: "lower seq with the same or an earlier ts is a duplicate", steps: []epochStep{
		{seq: 10, at: 5 * time.Second, stored: true},
		{seq: 3, at: 5 * time.Second},
		{seq: 3, at: 4 * time.Second},
		{seq: 10, at: 5 * time.Second},
		{seq: 11, at: 1 * time.Second, stored: true},
		{seq: 11, at: 2 * time.Second, stored: true}, // the same seq with a later ts: a restart, not a resend
	}, dups: 3, restarts: 1},
	{name: "lower seq without ts is a duplicate", steps: []epochStep{
		{seq: 10, at: 5 * time.Second, stored: true},
		{seq: 1, noTS: true},
		{seq: 11, noTS: true, stored: true},
		{seq: 1, at: 9 * time.Second}, // the last stored reading had no ts
	}, dups: 2},
	{name: "boot dropped keeps the epoch, ts rule applies", steps: []epochStep{
		{seq: 5, boot: "b1", at: 1 * time.Second, stored: true},
		{seq: 6, at: 2 * time.Second, stored: true},
		{seq: 3, boot: "b1", at: 3 * time.Second},
		{seq: 3, at: 3 * time.Second, stored: true},
	}, dups: 1, restarts: 1},
	{name: "first seq with a boot is no restart", steps: []epochStep{
		{seq: 100, boot: "b1", noTS: true, stored: true},
	}, boot: "b1"},
	{name: "readings without seq are stored and leave the epoch alone", steps: []epochStep{
		{seq: 5, boot: "b1", at: 1 * time.Second, stored: true},
		{noSeq: true, at: 1 * time.Second, stored: true},
		{noSeq: true, at: 1 * time.Second, stored: true},
		{seq: 5, boot: "b1", at: 1 * time.Second},
	}, dups: 1, boot: "b1"},
	{name: "a huge seq cannot silence the device", steps: []epochStep{
		{seq: 20, noTS: true, stored: true},
		{seq: math.MaxUint64, noTS: true, stored: true},
		{seq: 21, noTS: true, stored: true},
		{seq: 22, noTS: true, stored: true},
		{seq: 21, noTS: true},
	}, dups: 1, restarts: 2},
	{name: "seq gap bound", steps: []epochStep{
		{seq: MaxSeqGap + 10, noTS: true, stored: true},
		{seq: 10, noTS: true},
		{seq: 9, noTS: true, stored: true},
		{seq: 9 + MaxSeqGap, noTS: true, stored: true},
		{seq: 10 + 2*MaxSeqGap, noTS: true, stored: true},
	}, dups: 1, restarts: 2},
}

func TestSeqEpochs(t *testing.T) {
	modes := []string{"separate commits", "one batch", "restart after every write"}
	for _, tc := range epochCases {
		for _, mode := range modes {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				cfg := testConfig(t)
				cfg.Metrics = metrics.New("test")
				s := openStore(t, cfg)
				var release func()
				if mode == "one batch" {
					release = hold(t, s)
				}
				results := make([]bridge.Result, len(tc.steps))
				chans := make([]<-chan bridge.Result, len(tc.steps))
				for i, st := range tc.steps {
					chans[i] = submitAsync(t, s, st.write(i))
					if mode != "one batch" {
						results[i] = wait(t, chans[i])
					}
					if mode == "restart after every write" {
						if err := s.Close(); err != nil {
							t.Fatal(err)
						}
						s = openStore(t, cfg)
					}
				}
				if release != nil {
					release()
					for i := range tc.steps {
						results[i] = wait(t, chans[i])
					}
				}
				for i, st := range tc.steps {
					if r := results[i]; r.Err != nil || r.Duplicate == st.stored {
						t.Errorf("step %d %+v: result %+v, want stored %v", i, st, r, st.stored)
					}
				}
				d, _, err := s.Device("d1")
				if err != nil {
					t.Fatal(err)
				}
				if d.Duplicates != tc.dups || d.SeqRestarts != tc.restarts || d.Boot != tc.boot {
					t.Errorf("device duplicates %d seq_restarts %d boot %q, want %d %d %q",
						d.Duplicates, d.SeqRestarts, d.Boot, tc.dups, tc.restarts, tc.boot)
				}
				if got := testutil.ToFloat64(cfg.Metrics.SeqRestarts); got != float64(tc.restarts) {
					t.Errorf("seq restarts metric %v, want %d", got, tc.restarts)
				}
				if got := testutil.ToFloat64(cfg.Metrics.Duplicates); got != float64(tc.dups) {
					t.Errorf("duplicates metric %v, want %d", got, tc.dups)
				}
			})
		}
	}
}

// TestSeqEpochStateRolledBackWithTheCommit checks that a failed commit
// leaves the epoch state as it was, in the writer's cache and in the file.
func TestSeqEpochStateRolledBackWithTheCommit(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	submitSync(t, s, epochStep{seq: 10, boot: "b1", noTS: true}.write(0))
	// Closing the file under the idle writer makes its next commit fail.
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	r := wait(t, submitAsync(t, s, epochStep{seq: 1, boot: "b2", noTS: true}.write(1)))
	if r.Err == nil {
		t.Fatalf("write on a closed file: %+v, want an error", r)
	}
	rec := s.w.devices["d1"]
	if rec == nil || rec.boot != "b1" || rec.seq != 10 || rec.restarts != 0 {
		t.Errorf("cached record after the failed commit: %+v", rec)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, cfg)
	if r := submitSync(t, s, epochStep{seq: 10, boot: "b1", noTS: true}.write(2)); !r.Duplicate {
		t.Errorf("resend after reopening: %+v, want a duplicate", r)
	}
}

func TestDecodeDeviceWithoutEpochPart(t *testing.T) {
	// A record as written before the epoch part existed.
	v := []byte{devHasSeq}
	v = binary.AppendUvarint(v, 3)  // session
	v = binary.AppendUvarint(v, 42) // seq
	v = binary.AppendVarint(v, t0.UnixMilli())
	v = binary.AppendVarint(v, t0.UnixMilli())
	v = appendString(v, "mqtt")
	v = binary.AppendUvarint(v, 1)
	v = appendString(v, "temp")
	r, err := decodeDevice(v)
	if err != nil {
		t.Fatal(err)
	}
	if !r.hasSeq || r.seq != 42 || r.hasTS || r.boot != "" || r.duplicates != 0 || r.restarts != 0 {
		t.Errorf("decoded %+v", r)
	}
	full := deviceRec{hasSeq: true, seq: 7, hasTS: true, tsMicro: t0.UnixMicro(), boot: "b7", duplicates: 4, restarts: 2, metrics: []string{}}
	got, err := decodeDevice(appendDevice(nil, &full))
	if err != nil || got.boot != "b7" || got.tsMicro != full.tsMicro || !got.hasTS || got.duplicates != 4 || got.restarts != 2 {
		t.Errorf("round trip %+v %v, want %+v", got, err, full)
	}
}
