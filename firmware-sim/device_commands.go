package firmwaresim

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// maxPendingResults bounds the results a device keeps while it has no
// connection; past it the oldest is forgotten.
const maxPendingResults = 64

// onCommand handles a command that arrived on link l, on l's own
// goroutine: a WebSocket device confirms it at once with command_ack (an
// MQTT device's PUBACK follows when the handler returns). A command id the
// device has seen already is confirmed again but not run again. The
// command runs on the device's scheduler after Config.CommandDelay.
func (d *device) onCommand(l link, c command) {
	if d.muted.Load() {
		return
	}
	d.mu.Lock()
	fresh := d.seen.add(c.ID)
	d.mu.Unlock()
	if err := l.ackCommand(c.ID); err != nil {
		d.s.log.Debug("command ack not sent", "device", d.id, "command", c.ID, "err", err)
	}
	if !fresh {
		d.s.stats.cmdRepeats.Add(1)
		return
	}
	d.s.stats.cmdReceived.Add(1)
	d.sched.add(task{at: d.s.mono() + int64(d.s.cfg.CommandDelay), dev: d, kind: taskCommand, cmd: &c})
}

// runCommand runs command c on the scheduler goroutine of the device and
// answers it. The fault die is drawn for every command, so that a run
// stays reproducible whatever the commands are.
func (d *device) runCommand(c *command) {
	fail := d.cmdDice.Float64() < d.s.cfg.CommandFailRate
	switch {
	case fail:
		d.answer(&commandResult{id: c.ID, message: "simulated failure (--command-fail-rate)"})
	case c.Name == CommandPing:
		d.answer(&commandResult{id: c.ID, ok: true, result: json.RawMessage(`{"pong":true}`)})
	case c.Name == CommandSetInterval:
		d.setInterval(c)
	case c.Name == CommandReboot:
		d.s.stats.cmdOK.Add(1)
		d.reboot(c.ID)
	default:
		d.answer(&commandResult{id: c.ID, message: fmt.Sprintf("unknown command %q: this device knows %s, %s and %s",
			c.Name, CommandSetInterval, CommandReboot, CommandPing)})
	}
}

// setInterval changes the time between the device's readings. The next
// reading comes one new interval from now; the reading already scheduled
// is skipped (its chain is of an older generation).
func (d *device) setInterval(c *command) {
	p, err := parseInterval(c.Params)
	if err != nil {
		d.answer(&commandResult{id: c.ID, message: err.Error()})
		return
	}
	d.period = int64(p)
	d.readingGen++
	d.sched.add(task{at: d.s.mono() + d.period, dev: d, kind: taskReading, gen: d.readingGen})
	ms := strconv.FormatFloat(float64(p)/float64(time.Millisecond), 'f', -1, 64)
	d.answer(&commandResult{id: c.ID, ok: true, result: json.RawMessage(`{"interval_ms":` + ms + `}`)})
}

// rebootResult is the result of a reboot command, sent from the new boot.
func rebootResult(id, boot string) *commandResult {
	r := json.RawMessage(`{"rebooted":true}`)
	if boot != "" {
		r = mustJSON(struct {
			Rebooted bool   `json:"rebooted"`
			Boot     string `json:"boot"`
		}{true, boot})
	}
	return &commandResult{id: id, ok: true, result: r}
}

// answer counts result r and sends it, or keeps it for the next
// connection.
func (d *device) answer(r *commandResult) {
	if r.ok {
		d.s.stats.cmdOK.Add(1)
	} else {
		d.s.stats.cmdFailed.Add(1)
	}
	d.mu.Lock()
	d.keepResult(r)
	d.mu.Unlock()
	d.flushResults()
}

// keepResult queues r to be sent; d.mu is held.
func (d *device) keepResult(r *commandResult) {
	if len(d.results) == maxPendingResults {
		d.results[0] = nil
		d.results = d.results[1:]
	}
	d.results = append(d.results, r)
}

// flushResults sends the results waiting, oldest first, on the current
// link. A result leaves the queue once written (WebSocket) or handed to
// the MQTT client; one lost with its connection then is not sent again.
func (d *device) flushResults() {
	d.resultMu.Lock()
	defer d.resultMu.Unlock()
	for {
		l, r := d.nextResult()
		if l == nil {
			return
		}
		if err := l.answer(r); err != nil {
			d.s.log.Debug("command result not sent", "device", d.id, "command", r.id, "err", err)
			l.drop()
			d.lost(l)
			return
		}
		d.resultSent(r)
	}
}

func (d *device) nextResult() (link, *commandResult) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.link == nil || d.muted.Load() || len(d.results) == 0 {
		return nil, nil
	}
	return d.link, d.results[0]
}

// resultSent takes r out of the queue, unless a reboot emptied it
// meanwhile.
func (d *device) resultSent(r *commandResult) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.results) > 0 && d.results[0] == r {
		d.results[0] = nil
		d.results = d.results[1:]
	}
}

// forgetCommands is the command side of a reboot; d.mu is held. The
// command ids seen and the results not yet sent are lost with the RAM,
// except what a commanded reboot keeps in flash: the id of the command
// that rebooted the device (a repeat of it is not run again) and its
// result, sent from the new boot.
func (d *device) forgetCommands(cmdID string) {
	d.seen = seenCommands{}
	clear(d.results)
	d.results = d.results[:0]
	if cmdID != "" {
		d.seen.add(cmdID)
		d.results = append(d.results, rebootResult(cmdID, d.boot))
	}
}
