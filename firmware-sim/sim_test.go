package firmwaresim

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitFor polls cond until it holds; the timeout only guards against a hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A run's wait gives up when the run stopped moving, not after a fixed
// time: on a loaded machine the hub's commits (and so its acks) stall for
// seconds at a time, 6 to 10 s measured with other tests writing to the
// same disk, and a run then needs minutes to do what it does in seconds
// on an idle one.
const (
	runStall = 30 * time.Second // no ack, answer or connection change for this long: hung
	runLimit = 4 * time.Minute  // the whole wait, should it move without ever getting there
)

// runProgress is what moves only while the hub answers or the devices'
// connections change; readings are taken on the clock, hub or no hub.
func runProgress(s *Sim) [6]uint64 {
	st := &s.stats
	return [6]uint64{st.acked.Load(), st.errors.Load(), st.connects.Load(),
		st.disconnects.Load(), st.connectFails.Load(), st.cmdReceived.Load()}
}

// waitRun polls cond until it holds. It fails when the run made no
// progress for runStall, or cond did not hold within runLimit.
func waitRun(t *testing.T, s *Sim, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	last, moved := runProgress(s), start
	for !cond() {
		now := time.Now()
		if p := runProgress(s); p != last {
			last, moved = p, now
		}
		if now.Sub(moved) > runStall || now.Sub(start) > runLimit {
			t.Fatalf("waiting for %s: gave up after %v, the last %v without progress "+
				"(acked, errors, connects, disconnects, connect failures, commands: %v)",
				what, now.Sub(start).Round(time.Millisecond), now.Sub(moved).Round(time.Millisecond), last)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runUntil is runSim for runs that must end without error.
func runUntil(t *testing.T, cfg Config, what string, cond func(s *Sim) bool) (*Sim, *Summary) {
	t.Helper()
	s, sum, err := runSim(t, cfg, what, cond)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return s, sum
}

// acked returns a condition: at least n readings acked.
func acked(n uint64) func(*Sim) bool {
	return func(s *Sim) bool { return s.stats.acked.Load() >= n }
}

func requireVerified(t *testing.T, sum *Summary) {
	t.Helper()
	v := sum.Verify
	if v == nil || !v.OK || v.Missing != 0 || v.Duplicates != 0 || v.Events == 0 || v.Expected != int(sum.Acked) {
		b, _ := json.Marshal(sum)
		t.Fatalf("verify failed (want OK, events, expected == acked %d):\n%s", sum.Acked, b)
	}
}

func TestWSResendAfterLostAcksKeepsOriginalSeq(t *testing.T) {
	h := newFakeHub(t, func(h *fakeHub) { h.loseFirst = 3 })
	cfg := h.config()
	cfg.Rate, cfg.Verify = 100, true
	_, sum := runUntil(t, cfg, "10 acks", acked(10))

	h.mu.Lock()
	conns := slices.Clone(h.conns["sim-0"])
	h.mu.Unlock()
	if len(conns) < 2 {
		t.Fatalf("%d connections, want a reconnect after the drop", len(conns))
	}
	// the hub drops the connection on the 4th frame; more may be in flight
	if want := []uint64{1000, 1001, 1002, 1003}; len(conns[0]) < 4 || !slices.Equal(conns[0][:4], want) {
		t.Fatalf("first connection got seqs %v, want %v", conns[0], want)
	}
	if len(conns[1]) < 4 || !slices.Equal(conns[1][:4], []uint64{1000, 1001, 1002, 1003}) {
		t.Fatalf("second connection starts with %v, want the unacked readings with their original seqs", conns[1])
	}
	for seq, n := range h.storedSeqs("sim-0") {
		if n != 1 {
			t.Fatalf("seq %d stored %d times", seq, n)
		}
	}
	if sum.Resent < 4 || sum.Acked != sum.Readings {
		t.Fatalf("resent %d acked %d of %d readings", sum.Resent, sum.Acked, sum.Readings)
	}
	requireVerified(t, sum)
}

func TestWSDropsAndHeartbeats(t *testing.T) {
	h := newFakeHub(t, nil)
	cfg := h.config()
	cfg.Devices, cfg.Rate, cfg.DropRate, cfg.Verify = 5, 50, 0.2, true
	_, sum := runUntil(t, cfg, "drops, acks and heartbeats", func(s *Sim) bool {
		return s.stats.drops.Load() >= 3 && s.stats.acked.Load() >= 100 && h.count(h.heartbeats, "sim-0") > 0
	})
	if sum.Drops == 0 || sum.Connects <= 5 || sum.Disconnects == 0 {
		t.Fatalf("drops %d connects %d disconnects %d: want drops and reconnects", sum.Drops, sum.Connects, sum.Disconnects)
	}
	if sum.Heartbeats == 0 || h.count(h.heartbeats, "sim-0") == 0 {
		t.Fatalf("heartbeats %d sent, %d received", sum.Heartbeats, h.count(h.heartbeats, "sim-0"))
	}
	if sum.Unacked != 0 || sum.Acked != sum.Readings {
		t.Fatalf("acked %d of %d, unacked %d", sum.Acked, sum.Readings, sum.Unacked)
	}
	requireVerified(t, sum)
}

func TestWSMalformedFramesCounted(t *testing.T) {
	h := newFakeHub(t, nil)
	cfg := h.config()
	cfg.Devices, cfg.Rate, cfg.MalformedRate, cfg.Verify = 2, 50, 1, true
	_, sum := runUntil(t, cfg, "malformed frames", func(s *Sim) bool { return s.stats.malformed.Load() >= 5 })
	h.mu.Lock()
	answers := h.answers
	h.mu.Unlock()
	if sum.Malformed == 0 || sum.Errors != sum.Malformed || sum.Errors != uint64(answers) {
		t.Fatalf("malformed %d, errors counted %d, answers sent %d: want all equal", sum.Malformed, sum.Errors, answers)
	}
	if sum.Rejected != 0 {
		t.Fatalf("%d readings rejected: malformed frames must not carry a reading's seq", sum.Rejected)
	}
	requireVerified(t, sum)
}

func TestWSSenMLFrames(t *testing.T) {
	h := newFakeHub(t, nil)
	cfg := h.config()
	cfg.Rate, cfg.Format, cfg.Verify = 50, FormatSenML, true
	_, sum := runUntil(t, cfg, "10 acks", acked(10))
	requireVerified(t, sum)
	if sum.Verify.Matching != "seq" {
		t.Fatalf("matching %q, want seq for WebSocket", sum.Verify.Matching)
	}
}

func TestVerifyDetectsMissingAndDuplicated(t *testing.T) {
	h := newFakeHub(t, func(h *fakeHub) {
		h.skipStore = map[uint64]bool{1003: true}
		h.dupStore = map[uint64]bool{1005: true}
	})
	cfg := h.config()
	cfg.Rate, cfg.Verify = 100, true
	_, sum := runUntil(t, cfg, "10 acks", acked(10))
	v := sum.Verify
	if v == nil || v.OK || v.Missing != 1 || v.Duplicates != 1 || !sum.Failed() {
		t.Fatalf("verify %+v: want 1 missing, 1 duplicate, failed", v)
	}
	if *sum.Missing != 1 || *sum.Duplicates != 1 {
		t.Fatalf("summary missing %d duplicates %d", *sum.Missing, *sum.Duplicates)
	}
	text := strings.Join(v.Problems, "\n")
	if !strings.Contains(text, "sim-0 seq 1003") || !strings.Contains(text, "sim-0 seq 1005") {
		t.Fatalf("problems do not name the readings:\n%s", text)
	}
}

func TestVerifyListsBoundedProblems(t *testing.T) {
	skip := map[uint64]bool{}
	for s := uint64(1000); s < 1100; s++ {
		skip[s] = true
	}
	h := newFakeHub(t, func(h *fakeHub) { h.skipStore = skip })
	cfg := h.config()
	cfg.Rate, cfg.Verify, cfg.MaxProblems = 200, true, 3
	_, sum := runUntil(t, cfg, "10 acks", acked(10))
	v := sum.Verify
	if len(v.Problems) != 3 || v.MoreProblems != v.Missing-3 || v.Missing < 10 {
		t.Fatalf("%d problems listed, %d more, %d missing", len(v.Problems), v.MoreProblems, v.Missing)
	}
}

func TestMQTTFormatsVerify(t *testing.T) {
	tests := []struct {
		format   Format
		qos0     bool
		matching string
	}{
		{FormatJSON, false, "seq"},
		{FormatWrapped, false, "seq"},
		{FormatSenML, false, "ts"},
		{FormatPlain, false, "count"},
		{FormatJSON, true, "seq"},
	}
	for _, tt := range tests {
		t.Run(string(tt.format)+map[bool]string{true: "-qos0", false: "-qos1"}[tt.qos0], func(t *testing.T) {
			h := newFakeHub(t, nil)
			cfg := h.config()
			cfg.Transport, cfg.Format, cfg.QoS0 = TransportMQTT, tt.format, tt.qos0
			cfg.Devices, cfg.Rate, cfg.Verify = 2, 40, true
			_, sum := runUntil(t, cfg, "readings, online status and heartbeats", func(s *Sim) bool {
				return s.stats.acked.Load()+s.stats.unconfirmed.Load() >= 10 &&
					h.count(h.online, "sim-0") > 0 && h.count(h.heartbeats, "sim-1") > 0
			})
			requireVerified(t, sum)
			if sum.Verify.Matching != tt.matching {
				t.Fatalf("matching %q, want %q", sum.Verify.Matching, tt.matching)
			}
			if tt.qos0 && (sum.Acked != 0 || sum.Unconfirmed != sum.Readings) {
				t.Fatalf("QoS 0: acked %d unconfirmed %d of %d", sum.Acked, sum.Unconfirmed, sum.Readings)
			}
			if !tt.qos0 && sum.Acked != sum.Readings {
				t.Fatalf("QoS 1: acked %d of %d", sum.Acked, sum.Readings)
			}
			if h.count(h.online, "sim-0") == 0 || h.count(h.heartbeats, "sim-1") == 0 {
				t.Fatal("no online status or no heartbeat published")
			}
		})
	}
}

func TestMQTTDropsSendWillAndResend(t *testing.T) {
	h := newFakeHub(t, nil)
	cfg := h.config()
	cfg.Transport, cfg.Devices, cfg.Rate = TransportMQTT, 3, 50
	cfg.DropRate, cfg.Verify = 0.2, true
	wills := func() int {
		return h.count(h.wills, "sim-0") + h.count(h.wills, "sim-1") + h.count(h.wills, "sim-2")
	}
	_, sum := runUntil(t, cfg, "drops, wills and acks", func(s *Sim) bool {
		return s.stats.drops.Load() >= 3 && wills() > 0 && s.stats.acked.Load() >= 100
	})
	if sum.Drops == 0 || wills() == 0 || sum.Connects <= 3 {
		t.Fatalf("drops %d, wills %d, connects %d", sum.Drops, wills(), sum.Connects)
	}
	requireVerified(t, sum)
}

func TestMQTTMalformedCounted(t *testing.T) {
	h := newFakeHub(t, nil)
	cfg := h.config()
	cfg.Transport, cfg.Rate, cfg.MalformedRate, cfg.Verify = TransportMQTT, 50, 1, true
	_, sum := runUntil(t, cfg, "malformed payloads answered", func(s *Sim) bool {
		return s.stats.malformed.Load() >= 5 && s.stats.errors.Load() >= 1
	})
	h.mu.Lock()
	answers := h.answers
	h.mu.Unlock()
	if sum.Malformed == 0 || answers == 0 || sum.Errors == 0 || sum.Errors > uint64(answers) {
		t.Fatalf("malformed %d, answers sent %d, errors counted %d", sum.Malformed, answers, sum.Errors)
	}
	requireVerified(t, sum)
}

func TestMixedTransport(t *testing.T) {
	h := newFakeHub(t, nil)
	cfg := h.config()
	cfg.Transport, cfg.Devices, cfg.Rate, cfg.Verify = TransportMixed, 4, 30, true
	_, sum := runUntil(t, cfg, "20 acks", acked(20))
	requireVerified(t, sum)
	if h.count(h.online, "sim-1") == 0 || len(h.storedSeqs("sim-0")) == 0 {
		t.Fatal("mixed run did not use both transports")
	}
}

func TestSilentDeviceStopsAndIgnoresPings(t *testing.T) {
	h := newFakeHub(t, nil)
	cfg := h.config()
	cfg.Devices, cfg.Silent, cfg.SilentAfter, cfg.Rate = 2, 1, 100*time.Millisecond, 50
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan *Summary)
	go func() {
		sum, _ := s.Run(ctx)
		done <- sum
	}()
	silent := s.devices[1]
	waitFor(t, "the silent device to go silent", silent.muted.Load)
	framesAtSilence := h.count(h.frames, "sim-1")
	loudFrames := h.count(h.frames, "sim-0")
	waitFor(t, "the other device to keep sending", func() bool { return h.count(h.frames, "sim-0") > loudFrames+5 })
	h.pingAll()
	waitFor(t, "a pong from the other device", func() bool { return h.count(h.pongs, "sim-0") > 0 })
	if got := h.count(h.frames, "sim-1"); got != framesAtSilence {
		t.Fatalf("silent device sent %d frames after going silent", got-framesAtSilence)
	}
	if got := h.count(h.pongs, "sim-1"); got != 0 {
		t.Fatalf("silent device answered %d pings", got)
	}
	cancel()
	if sum := <-done; sum == nil || sum.Acked != sum.Readings {
		t.Fatalf("summary %+v: want every reading acked", sum)
	}
}

func TestStoreAndForwardWhileHubDown(t *testing.T) {
	h := newFakeHub(t, nil)
	cfg := h.config()
	cfg.Hub = "http://127.0.0.1:1" // nothing listens: readings pile up
	cfg.Rate, cfg.Duration, cfg.DrainTimeout, cfg.BufferSize = 200, 200*time.Millisecond, time.Millisecond, 10
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := s.Run(t.Context())
	if err == nil || sum.Sent != 0 || sum.Unacked != 10 || sum.Discarded != sum.Readings-10 {
		t.Fatalf("err %v, sent %d unacked %d discarded %d of %d", err, sum.Sent, sum.Unacked, sum.Discarded, sum.Readings)
	}
}

func TestSummaryJSONShape(t *testing.T) {
	h := newFakeHub(t, nil)
	for _, verify := range []bool{false, true} {
		cfg := h.config()
		cfg.Verify, cfg.IDPrefix = verify, map[bool]string{false: "a-", true: "b-"}[verify]
		_, sum := runUntil(t, cfg, "an ack", acked(1))
		b, err := json.Marshal(sum)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"sent", "acked", "resent", "errors", "devices", "transport", "duration_s", "rate"} {
			if _, ok := m[k]; !ok {
				t.Errorf("verify=%v: no %q in %s", verify, k, b)
			}
		}
		lat, _ := m["ack_latency_ms"].(map[string]any)
		if _, ok := lat["p50"]; !ok {
			t.Errorf("no ack_latency_ms.p50 in %s", b)
		}
		if _, ok := lat["p99"]; !ok {
			t.Errorf("no ack_latency_ms.p99 in %s", b)
		}
		_, hasMissing := m["missing"]
		_, hasDups := m["duplicates"]
		if hasMissing != verify || hasDups != verify {
			t.Errorf("verify=%v: missing present %v, duplicates present %v", verify, hasMissing, hasDups)
		}
		var text strings.Builder
		if err := sum.WriteText(&text); err != nil || !strings.Contains(text.String(), "acked") {
			t.Errorf("text summary %q, %v", text.String(), err)
		}
	}
}

// A reading sent at QoS 0 and missing from the hub fails the verification:
// The summary counts every reading sent, confirmed or not.
func TestVerifyFailsOnLostQoS0Reading(t *testing.T) {
	h := newFakeHub(t, func(h *fakeHub) { h.skipStore = map[uint64]bool{1003: true} })
	cfg := h.config()
	cfg.Transport, cfg.QoS0, cfg.Rate, cfg.Verify = TransportMQTT, true, 100, true
	_, sum := runUntil(t, cfg, "10 readings", func(s *Sim) bool { return s.stats.unconfirmed.Load() >= 10 })
	v := sum.Verify
	if v == nil || v.OK || v.LostUnconfirmed != 1 || !sum.Failed() {
		t.Fatalf("verify %+v: want 1 lost QoS 0 reading and a failure", v)
	}
	if !strings.Contains(strings.Join(v.Problems, "\n"), "sim-0 seq 1003") {
		t.Fatalf("problems do not name the reading: %v", v.Problems)
	}
}
