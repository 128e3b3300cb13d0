package firmwaresim

import (
	"context"
	"fmt"
	"math/bits"
	"sort"
	"strings"
	"time"
)

// VerifyResult is what verify found in the hub's event log.
//
// How readings are matched to events depends on what the payload carries:
// by device seq within its seq epoch (WebSocket, MQTT json and wrapped; the
// epoch is the event's device_boot, else the one whose readings' device
// times cover the event's ts, else, for devices without a clock, the first
// epoch whose reading of that seq is not found yet), by device time to the
// millisecond (MQTT senml: SenML has no seq, so a reading resent after a
// lost PUBACK can be stored twice; those are counted apart, as
// ResentDuplicates, not as failures), or, for MQTT plain (neither seq nor
// time), by counting each device's events per metric.
type VerifyResult struct {
	// OK is true when every reading the run sent is stored, once: nothing
	// is missing (Missing and LostUnconfirmed are 0) and nothing is
	// duplicated.
	OK bool `json:"ok"`
	// Matching is how events were matched: "seq", "ts", "count", or a
	// "+"-joined mix for mixed runs.
	Matching string `json:"matching"`
	// Events is the number of telemetry events of this run's devices read.
	Events int `json:"events"`
	// Expected is the number of readings that must be stored exactly once:
	// those the hub acked, and those sent on a link that acks (WebSocket,
	// MQTT QoS 1) and not refused.
	Expected int `json:"expected"`
	// Missing counts expected readings not stored (with all their metrics),
	// and sent readings the hub refused (for one, over its rate limit).
	Missing int `json:"missing"`
	// Duplicates counts readings stored more than once.
	Duplicates int `json:"duplicates"`
	// ResentDuplicates counts readings without a seq stored twice after a
	// resend: the hub cannot tell those apart, so they are not failures.
	ResentDuplicates int `json:"resent_duplicates"`
	// LostAtReboot counts readings a device lost with its RAM at a reboot
	// before the hub confirmed them and that are not stored: the device
	// gave them up, so they are not failures.
	LostAtReboot int `json:"lost_at_reboot"`
	// LostUnconfirmed counts readings sent without confirmation (QoS 0) and
	// not stored. QoS 0 promises at most once, but a reading sent and
	// missing from the hub fails the verification all the same.
	LostUnconfirmed int `json:"lost_unconfirmed"`
	// Unexpected counts events of this run's devices that match no reading
	// the run sent (another simulator with the same ids, for one).
	Unexpected int `json:"unexpected"`
	// Problems lists the first missing or duplicated readings.
	Problems []string `json:"problems,omitempty"`
	// MoreProblems counts problems beyond the listed ones.
	MoreProblems int `json:"more_problems,omitempty"`
}

// matchMode is how the events of a device are matched to its readings.
type matchMode uint8

const (
	matchSeq   matchMode = iota // by device_seq
	matchTS                     // by device time, within 1 ms
	matchCount                  // by counting events per metric
)

var matchNames = [...]string{"seq", "ts", "count"}

func (s *Sim) matchMode(d *device) matchMode {
	switch {
	case d.tr == TransportWS || s.cfg.Format.hasSeq():
		return matchSeq
	case s.cfg.Format == FormatSenML:
		return matchTS
	}
	return matchCount
}

// verifier matches the hub's events against the readings of the run.
type verifier struct {
	s       *Sim
	res     *VerifyResult
	byID    map[string]*device
	counts  map[*device]*[len(metricNames)]int // matchCount devices
	startMS int64                              // events older than this predate the run
}

// verify reads the event log of the hub at base URL hub and checks every
// reading of the run. It can run again, against another hub.
func (s *Sim) verify(ctx context.Context, hub string) (*VerifyResult, error) {
	s.clearMarks()
	v := &verifier{
		s: s, res: &VerifyResult{}, byID: make(map[string]*device, len(s.devices)),
		counts: make(map[*device]*[len(metricNames)]int), startMS: s.start.UnixMilli() - 1000,
	}
	modes := map[string]bool{}
	for _, d := range s.devices {
		v.byID[d.id] = d
		modes[matchNames[s.matchMode(d)]] = true
	}
	v.res.Matching = joinKeys(modes)
	if err := s.readEvents(ctx, hub, v.match); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	for _, d := range s.devices {
		v.evaluate(d)
	}
	v.res.OK = v.res.Missing == 0 && v.res.Duplicates == 0 && v.res.LostUnconfirmed == 0
	return v.res, nil
}

// clearMarks forgets what an earlier verify found.
func (s *Sim) clearMarks() {
	for _, d := range s.devices {
		d.mu.Lock()
		for i := range d.log {
			d.log[i].seen, d.log[i].extra = 0, 0
		}
		d.mu.Unlock()
	}
}

// match accounts for one event.
func (v *verifier) match(ev *storedEvent) {
	d := v.byID[ev.Data.Device]
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ms, okTS := eventMillis(ev.Data.TS)
	mi := metricIndex(ev.Data.Metric)
	switch v.s.matchMode(d) {
	case matchSeq:
		v.matchSeq(d, &ev.Data, ms, okTS, mi)
	case matchTS:
		v.matchTS(d, ms, okTS, mi)
	default:
		v.matchCount(d, ms, okTS, mi)
	}
}

func (v *verifier) matchSeq(d *device, ev *eventData, ms int64, okTS bool, mi int) {
	switch {
	case okTS && ms < v.startMS:
		// a reading of an earlier run
	case ev.DeviceSeq == nil || mi < 0:
		v.unexpected()
	default:
		le := v.findReading(d, *ev.DeviceSeq, ev.DeviceBoot, ms, mi)
		if le == nil {
			v.unexpected()
			return
		}
		v.mark(le, mi)
	}
}

// findReading returns the log entry of the reading of d with seq in the
// epoch the event belongs to: the one of its boot id, else the one whose
// first reading is the latest not after the event's device time, else
// (no clock) the first whose reading of seq has no metric mi found yet.
func (v *verifier) findReading(d *device, seq uint64, boot string, ms int64, mi int) *logEntry {
	switch {
	case boot != "":
		for i := range d.epochs {
			if d.epochs[i].boot == boot {
				return d.entryOf(i, seq)
			}
		}
		return nil
	case !v.s.cfg.NoClock:
		for i := len(d.epochs) - 1; i >= 0; i-- {
			if ts := d.epochs[i].firstTS; ts != 0 && ts <= ms {
				return d.entryOf(i, seq)
			}
		}
		return nil
	}
	var last *logEntry
	for i := range d.epochs {
		if le := d.entryOf(i, seq); le != nil {
			if le.seen&(1<<mi) == 0 {
				return le
			}
			last = le
		}
	}
	return last
}

// entryOf returns the log entry of seq in epoch i, nil when the epoch has
// no reading with that seq.
func (d *device) entryOf(i int, seq uint64) *logEntry {
	ep := &d.epochs[i]
	end := len(d.log)
	if i+1 < len(d.epochs) {
		end = d.epochs[i+1].firstIdx
	}
	if seq < ep.firstSeq || seq-ep.firstSeq >= uint64(end-ep.firstIdx) {
		return nil
	}
	return &d.log[ep.firstIdx+int(seq-ep.firstSeq)]
}

func (v *verifier) matchTS(d *device, ms int64, okTS bool, mi int) {
	if !okTS || ms < v.startMS || (len(d.log) > 0 && ms < d.log[0].ts-1) {
		return
	}
	i := sort.Search(len(d.log), func(i int) bool { return d.log[i].ts >= ms-1 })
	if i == len(d.log) || d.log[i].ts > ms+1 || mi < 0 {
		v.unexpected()
		return
	}
	v.mark(&d.log[i], mi)
}

func (v *verifier) matchCount(d *device, ms int64, okTS bool, mi int) {
	if !okTS || ms < v.startMS {
		return
	}
	if mi < 0 {
		v.unexpected()
		return
	}
	c := v.counts[d]
	if c == nil {
		c = new([len(metricNames)]int)
		v.counts[d] = c
	}
	c[mi]++
	v.res.Events++
}

func (v *verifier) unexpected() {
	v.res.Events++
	v.res.Unexpected++
}

// mark records that metric mi of a reading was found stored.
func (v *verifier) mark(le *logEntry, mi int) {
	v.res.Events++
	bit := uint8(1) << mi
	if le.seen&bit != 0 {
		le.extra = min(le.extra, 254) + 1
		return
	}
	le.seen |= bit
}

// evaluate turns the marks of one device into counts and problems.
func (v *verifier) evaluate(d *device) {
	d.mu.Lock()
	defer d.mu.Unlock()
	mode := v.s.matchMode(d)
	if mode == matchCount {
		v.evaluateCounts(d)
		return
	}
	for i := range d.log {
		v.evaluateReading(d, &d.log[i], mode)
	}
}

// expected reports whether a reading must be stored exactly once: acked,
// or sent on a link that acks, not refused and not given up at a reboot.
func (le *logEntry) expected() bool {
	if le.flags&flagAcked != 0 {
		return true
	}
	return le.flags&(flagSent|flagConfirmable) == flagSent|flagConfirmable &&
		le.flags&(flagRejected|flagAbandoned) == 0
}

func (v *verifier) evaluateReading(d *device, le *logEntry, mode matchMode) {
	sent := le.flags&flagSent != 0
	expected := le.expected()
	seq := le.seq
	switch {
	case expected:
		v.res.Expected++
		if le.seen != allMetrics {
			v.res.Missing++
			v.problem("%s seq %d (epoch %d) ts %d: confirmed, stored %d of %d metrics",
				d.id, seq, le.epoch, le.ts, bits.OnesCount8(le.seen), len(metricNames))
		}
	case le.flags&flagAbandoned != 0:
		if le.seen == 0 {
			v.res.LostAtReboot++
		}
	case sent && le.flags&flagRejected != 0 && le.seen == 0:
		v.res.Missing++
		v.problem("%s seq %d (epoch %d) ts %d: refused by the hub, not stored", d.id, seq, le.epoch, le.ts)
	case sent && le.seen == 0:
		v.res.LostUnconfirmed++
		v.problem("%s seq %d (epoch %d) ts %d: sent without confirmation, not stored", d.id, seq, le.epoch, le.ts)
	case !sent && le.seen != 0:
		v.res.Unexpected++
	}
	if le.extra == 0 {
		return
	}
	if mode == matchTS && le.flags&flagResent != 0 {
		v.res.ResentDuplicates++
		return
	}
	v.res.Duplicates++
	v.problem("%s seq %d (epoch %d) ts %d: stored again %d times", d.id, seq, le.epoch, le.ts, le.extra)
}

// evaluateCounts checks a device whose events carry neither seq nor time:
// per metric, at least every acked reading and at most every transmission.
func (v *verifier) evaluateCounts(d *device) {
	var acked, sent, transmissions int
	for _, le := range d.log {
		if le.expected() {
			acked++
		}
		if le.flags&flagSent != 0 {
			sent++
			transmissions += int(le.sends)
		}
	}
	v.res.Expected += acked
	stored := new([len(metricNames)]int)
	if c := v.counts[d]; c != nil {
		stored = c
	}
	var missing, dups, resentDups, lost int
	for mi, n := range stored {
		missing = max(missing, acked-n)
		dups = max(dups, n-transmissions)
		resentDups = max(resentDups, min(n, transmissions)-sent)
		lost = max(lost, sent-acked-max(n-acked, 0))
		if acked > n || n > transmissions {
			v.problem("%s %s: %d confirmed, %d sent %d times, %d stored",
				d.id, metricNames[mi], acked, sent, transmissions, n)
		}
	}
	v.res.Missing += missing
	v.res.Duplicates += dups
	v.res.ResentDuplicates += resentDups
	v.res.LostUnconfirmed += lost
}

func (v *verifier) problem(format string, args ...any) {
	if len(v.res.Problems) >= v.s.cfg.MaxProblems {
		v.res.MoreProblems++
		return
	}
	v.res.Problems = append(v.res.Problems, fmt.Sprintf(format, args...))
}

func (r *VerifyResult) writeText(b *strings.Builder) {
	verdict := "OK"
	if !r.OK {
		verdict = "FAILED"
	}
	fmt.Fprintf(b, "verify %s (by %s): %d events, %d expected, %d missing, %d duplicates, %d resent duplicates, %d unconfirmed lost, %d unexpected\n",
		verdict, r.Matching, r.Events, r.Expected, r.Missing, r.Duplicates, r.ResentDuplicates, r.LostUnconfirmed, r.Unexpected)
	for _, p := range r.Problems {
		fmt.Fprintf(b, "  %s\n", p)
	}
	if r.MoreProblems > 0 {
		fmt.Fprintf(b, "  … and %d more\n", r.MoreProblems)
	}
}

// verifyInto verifies Hub (with Verify) and each of VerifyHubs, and
// records the outcome in sum. QoS 0 readings may
// still be on their way into the hub, so it waits a moment for them first.
func (s *Sim) verifyInto(sum *Summary) error {
	if s.stats.unconfirmed.Load() > 0 {
		time.Sleep(settleTime)
	}
	ctx, cancel := context.WithTimeout(context.Background(), verifyTimeout)
	defer cancel()
	if s.cfg.Verify {
		res, err := s.verify(ctx, s.cfg.Hub)
		if err != nil {
			return err
		}
		sum.Verify, sum.Missing, sum.Duplicates = res, &res.Missing, &res.Duplicates
	}
	for _, hub := range s.cfg.VerifyHubs {
		res, err := s.verifyReplica(ctx, hub)
		if err != nil {
			return err
		}
		sum.VerifyHubs = append(sum.VerifyHubs, HubVerify{Hub: hub, VerifyResult: res})
	}
	return nil
}

// VerifyHub checks, after Run, that the hub at base URL hub (another
// replica of a cluster, say) holds every reading of the run exactly once,
// as Verify does for Config.Hub. It reads the hub's events once: a replica
// still catching up reports readings missing.
func (s *Sim) VerifyHub(ctx context.Context, hub string) (*VerifyResult, error) {
	if !s.ended.Load() {
		return nil, ErrNotRun
	}
	s.verifyMu.Lock()
	defer s.verifyMu.Unlock()
	return s.verify(ctx, hub)
}

// verifyReplica verifies against a replica, again every replicaPoll until
// nothing is missing or DrainTimeout passes: readings reach the replicas
// of a cluster a little after their ack.
func (s *Sim) verifyReplica(ctx context.Context, hub string) (*VerifyResult, error) {
	deadline := time.Now().Add(s.cfg.DrainTimeout)
	for {
		res, err := s.verify(ctx, hub)
		if err != nil || res.Missing == 0 || time.Now().After(deadline) {
			return res, err
		}
		select {
		case <-ctx.Done():
			return res, nil
		case <-time.After(replicaPoll):
		}
	}
}

// Timing of verify.
const (
	settleTime    = time.Second
	verifyTimeout = 5 * time.Minute
	replicaPoll   = 200 * time.Millisecond
)

func joinKeys(m map[string]bool) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, "+")
}
