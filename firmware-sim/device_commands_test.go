package firmwaresim

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// startSim runs cfg in the background until the returned stop is called;
// stop returns the run's summary and error.
func startSim(t *testing.T, cfg Config) (*Sim, func() (*Summary, error)) {
	t.Helper()
	cfg.Duration = 0
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	type result struct {
		sum *Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := s.Run(ctx)
		done <- result{sum, err}
	}()
	stopped := false
	var r result
	stop := func() (*Summary, error) {
		if !stopped {
			stopped = true
			cancel()
			r = <-done
		}
		return r.sum, r.err
	}
	t.Cleanup(func() { _, _ = stop() })
	return s, stop
}

// answer is a command answer as the fake hub recorded it.
type answer struct {
	Type    string          `json:"type"` // command_ack or command_result; "result" over MQTT
	ID      string          `json:"id"`
	Status  string          `json:"status"`
	Result  json.RawMessage `json:"result"`
	Message string          `json:"message"`
}

// parseAnswers reads the fake hub's records: WebSocket frames, or MQTT
// "commands/{cid}/result {payload}" lines.
func parseAnswers(t *testing.T, recs []string) []answer {
	t.Helper()
	out := make([]answer, 0, len(recs))
	for _, rec := range recs {
		var a answer
		payload := rec
		if topic, p, ok := strings.Cut(rec, " "); ok && strings.HasPrefix(topic, "commands/") {
			payload = p
			a.Type, a.ID = "result", strings.TrimSuffix(strings.TrimPrefix(topic, "commands/"), "/result")
		}
		if err := json.Unmarshal([]byte(payload), &a); err != nil {
			t.Fatalf("answer %q: %v", rec, err)
		}
		out = append(out, a)
	}
	return out
}

// results returns the results among answers, by command id.
func results(as []answer) map[string][]answer {
	out := map[string][]answer{}
	for _, a := range as {
		if a.Type != "command_ack" {
			out[a.ID] = append(out[a.ID], a)
		}
	}
	return out
}

func acksOf(as []answer) []string {
	var ids []string
	for _, a := range as {
		if a.Type == "command_ack" {
			ids = append(ids, a.ID)
		}
	}
	return ids
}

// TestCommandsOverBothTransports sends every kind of command, and one
// twice, to a device over WebSocket and over MQTT: each is answered once,
// in order, with the right status, and set_interval changes the rate; a
// command the device cannot read is ignored.
func TestCommandsOverBothTransports(t *testing.T) {
	for _, tr := range []Transport{TransportWS, TransportMQTT} {
		t.Run(string(tr), func(t *testing.T) {
			h := newFakeHub(t, nil)
			cfg := h.config()
			cfg.Transport, cfg.Rate = tr, 1
			s, stop := startSim(t, cfg)
			waitFor(t, "the device to connect", func() bool { return s.stats.connects.Load() == 1 })
			h.sendCommand(tr, "sim-0", "c/0", "ping", "") // an id no topic can carry: ignored
			h.sendCommand(tr, "sim-0", "c1", "ping", "")
			h.sendCommand(tr, "sim-0", "c2", "set_interval", `{"interval":"10ms"}`)
			h.sendCommand(tr, "sim-0", "c3", "set_interval", `{"interval":1}`)
			h.sendCommand(tr, "sim-0", "c4", "self_destruct", `{"now":true}`)
			h.sendCommand(tr, "sim-0", "c1", "ping", "")
			waitFor(t, "four results and a repeat", func() bool {
				return len(results(parseAnswers(t, h.commandAnswers("sim-0")))) == 4 && s.stats.cmdRepeats.Load() == 1
			})
			d := s.devices[0]
			seq := d.nextSeq()
			// At the old rate (1/s) 100 readings take 100 s, past waitFor's guard.
			waitFor(t, "readings at the new interval", func() bool { return d.nextSeq() >= seq+100 })
			sum, err := stop()
			if err != nil {
				t.Fatal(err)
			}
			as := parseAnswers(t, h.commandAnswers("sim-0"))
			want := []string{"c1", "c2", "c3", "c4", "c1"}
			if tr == TransportMQTT {
				want = nil // the PUBACK confirms
			}
			if got := acksOf(as); !slices.Equal(got, want) {
				t.Fatalf("acks %v, want %v", got, want)
			}
			checkResults(t, results(as))
			if c := sum.Commands; c != (Commands{Received: 4, OK: 2, Failed: 2, Repeats: 1}) {
				t.Fatalf("summary commands %+v", c)
			}
		})
	}
}

// checkResults checks the results of TestCommandsOverBothTransports.
func checkResults(t *testing.T, rs map[string][]answer) {
	t.Helper()
	for id, want := range map[string]struct{ status, result, message string }{
		"c1": {"ok", `{"pong":true}`, ""},
		"c2": {"ok", `{"interval_ms":10}`, ""},
		"c3": {"error", "", "interval 1ms is out of range: from 2ms to 24h0m0s"},
		"c4": {"error", "", `unknown command "self_destruct": this device knows set_interval, reboot and ping`},
	} {
		got := rs[id]
		if len(got) != 1 || got[0].Status != want.status || string(got[0].Result) != want.result || got[0].Message != want.message {
			t.Errorf("results of %s: %+v, want one %+v", id, got, want)
		}
	}
}

func (d *device) nextSeq() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seq
}

// TestCommandFailRate answers every command failed with --command-fail-rate 1,
// reboot included (the device does not reboot).
func TestCommandFailRate(t *testing.T) {
	for _, tr := range []Transport{TransportWS, TransportMQTT} {
		t.Run(string(tr), func(t *testing.T) {
			h := newFakeHub(t, nil)
			cfg := h.config()
			cfg.Transport, cfg.CommandFailRate = tr, 1
			s, stop := startSim(t, cfg)
			waitFor(t, "the device to connect", func() bool { return s.stats.connects.Load() == 1 })
			h.sendCommand(tr, "sim-0", "p1", "ping", "")
			h.sendCommand(tr, "sim-0", "r1", "reboot", "")
			waitFor(t, "two results", func() bool { return len(results(parseAnswers(t, h.commandAnswers("sim-0")))) == 2 })
			sum, err := stop()
			if err != nil {
				t.Fatal(err)
			}
			for id, rs := range results(parseAnswers(t, h.commandAnswers("sim-0"))) {
				if len(rs) != 1 || rs[0].Status != "error" || rs[0].Message != "simulated failure (--command-fail-rate)" {
					t.Fatalf("results of %s: %+v", id, rs)
				}
			}
			if sum.Commands != (Commands{Received: 2, Failed: 2}) || sum.Reboots != 0 {
				t.Fatalf("commands %+v, reboots %d", sum.Commands, sum.Reboots)
			}
		})
	}
}

// TestCommandedReboot reboots a device by command over each transport:
// the device confirms the command, drops its connection, comes back with
// seq 1 in a new epoch and a new boot, and answers from the new boot.
func TestCommandedReboot(t *testing.T) {
	for _, tr := range []Transport{TransportWS, TransportMQTT} {
		t.Run(string(tr), func(t *testing.T) {
			h := newFakeHub(t, nil)
			cfg := h.config()
			cfg.Transport, cfg.Rate = tr, 50
			s, stop := startSim(t, cfg)
			waitFor(t, "readings acked", func() bool { return s.stats.acked.Load() >= 10 })
			h.sendCommand(tr, "sim-0", "r1", "reboot", "")
			waitFor(t, "the result", func() bool { return len(results(parseAnswers(t, h.commandAnswers("sim-0")))) == 1 })
			d := s.devices[0]
			d.mu.Lock()
			boot, epoch, seq := d.boot, d.epoch, d.seq
			d.mu.Unlock()
			sum, err := stop()
			if err != nil {
				t.Fatal(err)
			}
			r := results(parseAnswers(t, h.commandAnswers("sim-0")))["r1"][0]
			if r.Status != "ok" || string(r.Result) != `{"rebooted":true,"boot":"`+boot+`"}` || boot == "" || epoch != 1 || seq > 1000 {
				t.Fatalf("result %+v; device boot %q epoch %d seq %d", r, boot, epoch, seq)
			}
			if sum.Reboots != 1 || sum.Connects != 2 || sum.Commands != (Commands{Received: 1, OK: 1}) {
				t.Fatalf("reboots %d connects %d commands %+v", sum.Reboots, sum.Connects, sum.Commands)
			}
		})
	}
}

// TestCommandRunsAfterTheDelayOnTheScheduler checks that a command is
// confirmed at once and runs from the device's scheduler after
// CommandDelay, with no timer of its own; a repeat is confirmed again and
// not run again.
func TestCommandRunsAfterTheDelayOnTheScheduler(t *testing.T) {
	d := newTestDevice(t, Config{CommandDelay: time.Hour})
	l := &memLink{d: d}
	d.attach(l)
	before := d.sched.Len()
	d.onCommand(l, command{ID: "a", Name: CommandPing})
	d.onCommand(l, command{ID: "a", Name: CommandPing})
	if !slices.Equal(l.acks, []string{"a", "a"}) || len(l.results) != 0 || d.sched.Len() != before+1 {
		t.Fatalf("acks %v, results %d, tasks %d (before %d)", l.acks, len(l.results), d.sched.Len(), before)
	}
	tk, wait, ok := d.sched.pop(d.s.mono())
	for ok && tk.kind != taskCommand { // the device's first connection attempt
		tk, wait, ok = d.sched.pop(d.s.mono())
	}
	if ok || wait < 59*time.Minute {
		t.Fatalf("command task due in %s, want about an hour", wait)
	}
	tk, _, _ = d.sched.pop(d.s.mono() + int64(time.Hour))
	if tk.kind != taskCommand || tk.cmd.ID != "a" {
		t.Fatalf("task %+v", tk)
	}
	d.runCommand(tk.cmd)
	if len(l.results) != 1 || string(l.results[0].result) != `{"pong":true}` || d.s.stats.cmdRepeats.Load() != 1 {
		t.Fatalf("results %+v, repeats %d", l.results, d.s.stats.cmdRepeats.Load())
	}
}

// TestRebootKeepsItsCommandAcrossTheReboot: the reboot command's result
// goes out on the next connection, a repeat of it does not reboot again,
// and the results the device had not sent are lost with the RAM.
func TestRebootKeepsItsCommandAcrossTheReboot(t *testing.T) {
	d := newTestDevice(t, Config{})
	first := &memLink{d: d, fail: errors.New("no route")}
	d.attach(first)
	d.onCommand(first, command{ID: "p", Name: CommandPing})
	d.runCommand(&command{ID: "p", Name: CommandPing}) // its result fails to go out and waits
	d.link = first
	first.closed, first.fail = false, nil
	d.onCommand(first, command{ID: "r", Name: CommandReboot})
	d.runCommand(&command{ID: "r", Name: CommandReboot})
	if !first.closed || len(first.results) != 0 || d.epoch != 1 || d.seq != 1 {
		t.Fatalf("after the reboot: link closed %v, results %v, epoch %d seq %d", first.closed, first.results, d.epoch, d.seq)
	}
	second := &memLink{d: d, ep: 1}
	d.attach(second)
	if len(second.results) != 1 || second.results[0].id != "r" || !second.results[0].ok {
		t.Fatalf("results on the new connection: %+v", second.results)
	}
	d.onCommand(second, command{ID: "r", Name: CommandReboot})
	d.onCommand(second, command{ID: "p", Name: CommandPing}) // forgotten with the RAM: runs again
	if d.s.stats.reboots.Load() != 1 || d.s.stats.cmdRepeats.Load() != 1 || d.s.stats.cmdReceived.Load() != 3 {
		t.Fatalf("reboots %d repeats %d received %d", d.s.stats.reboots.Load(), d.s.stats.cmdRepeats.Load(), d.s.stats.cmdReceived.Load())
	}
}

func TestSeenCommandsIsBounded(t *testing.T) {
	var s seenCommands
	for i := range seenCommandsMax + 10 {
		if !s.add(string(rune('a'+i%26)) + strings.Repeat("x", i/26)) {
			t.Fatalf("id %d taken for a repeat", i)
		}
	}
	if len(s.ids) != seenCommandsMax || len(s.ring) != seenCommandsMax {
		t.Fatalf("remembers %d ids (ring %d), want %d", len(s.ids), len(s.ring), seenCommandsMax)
	}
	if !s.add("a") || s.add("a") {
		t.Fatal("the oldest id was not forgotten, or a repeat was taken for new")
	}
}
