package firmwaresim

import (
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"
)

// stats are the run's counters, shared by every device goroutine.
type stats struct {
	readings     atomic.Uint64 // readings taken
	sent         atomic.Uint64 // readings transmitted at least once
	resent       atomic.Uint64 // retransmissions after a reconnect
	acked        atomic.Uint64 // readings the hub confirmed
	unconfirmed  atomic.Uint64 // readings handed to a transport without acks (MQTT QoS 0)
	rejected     atomic.Uint64 // readings the hub answered with an error
	errors       atomic.Uint64 // error answers received
	malformed    atomic.Uint64 // malformed payloads sent
	drops        atomic.Uint64 // connections dropped on purpose
	connects     atomic.Uint64 // connections made
	disconnects  atomic.Uint64 // connections lost
	connectFails atomic.Uint64 // connection attempts that failed
	discarded    atomic.Uint64 // unconfirmed readings pushed out of a full buffer
	reboots      atomic.Uint64 // device reboots (seq restarted)
	rebootLost   atomic.Uint64 // unconfirmed readings lost with a reboot
	heartbeats   atomic.Uint64 // heartbeats sent
	cmdReceived  atomic.Uint64 // distinct commands received
	cmdOK        atomic.Uint64 // commands answered "ok"
	cmdFailed    atomic.Uint64 // commands answered "error"
	cmdRepeats   atomic.Uint64 // deliveries of a command id already seen, not run again
	pending      atomic.Int64  // readings in buffers, not yet confirmed
	online       atomic.Int64  // devices connected now
}

// Latency is a set of ack latency percentiles in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Commands counts the commands of a run. A command the device answers is
// counted once answered, whether or not the result reached the hub.
type Commands struct {
	Received uint64 `json:"received"` // distinct command ids received
	OK       uint64 `json:"ok"`       // answered "ok" (a reboot: answered from the new boot)
	Failed   uint64 `json:"failed"`   // answered "error": unknown name, bad params, --command-fail-rate
	Repeats  uint64 `json:"repeats"`  // deliveries of a command id already seen: confirmed again, not run again
}

// Summary is the outcome of a run. Its JSON form is the --json output.
type Summary struct {
	Devices   int     `json:"devices"`
	Transport string  `json:"transport"`
	Format    string  `json:"format,omitempty"` // MQTT payload form, when MQTT is used
	QoS       *int    `json:"qos,omitempty"`    // MQTT QoS of readings, when MQTT is used
	Rate      float64 `json:"rate"`             // readings/s per device
	DurationS float64 `json:"duration_s"`       // wall time of the load phase

	Readings    uint64 `json:"readings"`    // readings taken
	Sent        uint64 `json:"sent"`        // readings transmitted at least once
	Acked       uint64 `json:"acked"`       // readings the hub confirmed stored
	Resent      uint64 `json:"resent"`      // retransmissions with the original seq
	Unconfirmed uint64 `json:"unconfirmed"` // readings sent at QoS 0: no ack exists
	Unacked     uint64 `json:"unacked"`     // readings still waiting for an ack at the end
	Discarded   uint64 `json:"discarded"`   // readings pushed out of a full buffer
	Reboots     uint64 `json:"reboots"`     // device reboots: seq restarted at 1 in a new epoch
	RebootLost  uint64 `json:"reboot_lost"` // unconfirmed readings lost with a reboot
	Rejected    uint64 `json:"rejected"`    // readings the hub refused with an error
	Errors      uint64 `json:"errors"`      // error answers received from the hub
	Malformed   uint64 `json:"malformed"`   // malformed payloads sent on purpose
	Heartbeats  uint64 `json:"heartbeats"`
	Connects    uint64 `json:"connects"`
	Drops       uint64 `json:"drops"` // connections dropped on purpose
	Disconnects uint64 `json:"disconnects"`
	ConnectFail uint64 `json:"connect_failures"`
	// NeverConnected counts devices that never connected during the run;
	// any makes the run fail.
	NeverConnected int `json:"never_connected"`

	AckedPerS  float64 `json:"acked_per_s"`
	AckLatency Latency `json:"ack_latency_ms"`

	// Commands counts the commands the devices received and answered.
	Commands Commands `json:"commands"`

	// Watchers is set when the run had watchers.
	Watchers *WatcherSummary `json:"watchers,omitempty"`

	// Missing and Duplicates are set with --verify (see VerifyResult).
	Missing    *int          `json:"missing,omitempty"`
	Duplicates *int          `json:"duplicates,omitempty"`
	Verify     *VerifyResult `json:"verify,omitempty"`
	// VerifyHubs is the verification against each of Config.VerifyHubs.
	VerifyHubs []HubVerify `json:"verify_hubs,omitempty"`
}

// HubVerify is what verify found on one more hub (a cluster replica).
type HubVerify struct {
	Hub string `json:"hub"`
	*VerifyResult
}

// Failed reports whether readings stayed unacknowledged at the end of the
// run (the hub refused or never confirmed them, or the run was cut short),
// or verify ran and found a missing or duplicated reading.
func (s *Summary) Failed() bool {
	if s.Unacked > 0 || (s.Verify != nil && !s.Verify.OK) {
		return true
	}
	for _, v := range s.VerifyHubs {
		if !v.OK {
			return true
		}
	}
	return false
}

// WriteText writes the summary in a few human-readable lines.
func (s *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "firmware-sim: %d %s devices, %.3g readings/s each, %.1fs\n",
		s.Devices, s.Transport, s.Rate, s.DurationS)
	fmt.Fprintf(&b, "readings %d  sent %d  acked %d (%.0f/s)  resent %d  unconfirmed %d  unacked %d  discarded %d\n",
		s.Readings, s.Sent, s.Acked, s.AckedPerS, s.Resent, s.Unconfirmed, s.Unacked, s.Discarded)
	fmt.Fprintf(&b, "errors %d  rejected %d  malformed sent %d  heartbeats %d\n",
		s.Errors, s.Rejected, s.Malformed, s.Heartbeats)
	fmt.Fprintf(&b, "connects %d  drops %d  disconnects %d  connect failures %d  never connected %d  reboots %d (%d unconfirmed readings lost)\n",
		s.Connects, s.Drops, s.Disconnects, s.ConnectFail, s.NeverConnected, s.Reboots, s.RebootLost)
	fmt.Fprintf(&b, "commands received %d  ok %d  failed %d  repeats %d\n",
		s.Commands.Received, s.Commands.OK, s.Commands.Failed, s.Commands.Repeats)
	fmt.Fprintf(&b, "ack latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n",
		s.AckLatency.P50, s.AckLatency.P90, s.AckLatency.P99, s.AckLatency.Max)
	if w := s.Watchers; w != nil {
		w.writeText(&b)
	}
	if v := s.Verify; v != nil {
		v.writeText(&b)
	}
	for _, v := range s.VerifyHubs {
		fmt.Fprintf(&b, "at %s: ", v.Hub)
		v.writeText(&b)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// summarize builds the summary of the run from the counters.
func (s *Sim) summarize(elapsed time.Duration) *Summary {
	st := &s.stats
	sum := &Summary{
		Devices: len(s.devices), Transport: string(s.cfg.Transport), Rate: s.cfg.Rate,
		DurationS: elapsed.Seconds(),
		Readings:  st.readings.Load(), Sent: st.sent.Load(), Acked: st.acked.Load(),
		Resent: st.resent.Load(), Unconfirmed: st.unconfirmed.Load(),
		Reboots: st.reboots.Load(), RebootLost: st.rebootLost.Load(),
		Unacked: uint64(max(st.pending.Load(), 0)), Discarded: st.discarded.Load(),
		Rejected: st.rejected.Load(), Errors: st.errors.Load(), Malformed: st.malformed.Load(),
		Heartbeats: st.heartbeats.Load(), Connects: st.connects.Load(), Drops: st.drops.Load(),
		Disconnects: st.disconnects.Load(), ConnectFail: st.connectFails.Load(),
		AckLatency: latencyOf(&s.hist),
		Commands: Commands{Received: st.cmdReceived.Load(), OK: st.cmdOK.Load(),
			Failed: st.cmdFailed.Load(), Repeats: st.cmdRepeats.Load()},
		Watchers: s.watch.summary(s.start),
	}
	if elapsed > 0 {
		sum.AckedPerS = float64(sum.Acked) / elapsed.Seconds()
	}
	if s.cfg.Transport != TransportWS {
		qos := int(s.cfg.qos())
		sum.Format, sum.QoS = string(s.cfg.Format), &qos
	}
	return sum
}

// latencyOf returns the percentiles of h in milliseconds.
func latencyOf(h *Histogram) Latency {
	return Latency{
		P50: ms(h.Quantile(0.50)), P90: ms(h.Quantile(0.90)),
		P99: ms(h.Quantile(0.99)), Max: ms(h.Max()),
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// progressLine writes the one-line progress report of second t.
func (s *Sim) progressLine(w io.Writer, t time.Duration) {
	st := &s.stats
	fmt.Fprintf(w, "t=%ds online=%d/%d sent=%d acked=%d pending=%d resent=%d err=%d drops=%d p99=%.1fms%s\n",
		int(t.Round(time.Second)/time.Second), st.online.Load(), len(s.devices), st.sent.Load(),
		st.acked.Load(), st.pending.Load(), st.resent.Load(), st.errors.Load(), st.drops.Load(),
		ms(s.hist.Quantile(0.99)), s.watch.progress())
}
