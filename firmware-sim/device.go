package firmwaresim

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// link is one live connection of a device to the hub. send is called with
// the device's sendMu held; the other methods may be called from any
// goroutine. drop and close are idempotent.
type link interface {
	// send transmits one reading.
	send(e *entry) error
	// heartbeat sends a heartbeat.
	heartbeat() error
	// malformed sends bad payload number variant (see malformedWS).
	malformed(variant int) error
	// confirms reports whether the hub acks readings on this link.
	confirms() bool
	// drop closes the connection abruptly, without a goodbye.
	drop()
	// close closes the connection cleanly.
	close()
	// dead reports whether the connection already ended.
	dead() bool
	// epoch is the device's seq epoch when the link was made: acks from a
	// link of an earlier epoch (before a reboot) are ignored.
	epoch() int
	// ackCommand confirms the receipt of command id (WebSocket
	// command_ack; over MQTT the PUBACK confirms and this does nothing).
	ackCommand(id string) error
	// answer sends the result of a command.
	answer(r *commandResult) error
}

// Flags of a reading in the verify log.
const (
	flagSent        = 1 << iota // transmitted at least once
	flagAcked                   // confirmed by the hub
	flagConfirmable             // transmitted on a link that acks
	flagResent                  // transmitted more than once
	flagRejected                // answered with an error
	flagAbandoned               // lost with the device's RAM at a reboot, unconfirmed
)

// logEntry is the verify bookkeeping of one reading.
type logEntry struct {
	seq   uint64
	epoch int32
	ts    int64 // device time, Unix ms
	flags uint8
	sends uint8 // transmissions, saturating
	seen  uint8 // bit mask of metrics found stored (verify)
	extra uint8 // metric events found more than once (verify), saturating
}

// device is one simulated device: its models, its seq, its
// store-and-forward buffer and its current link.
type device struct {
	s      *Sim
	index  int
	id     string
	tr     Transport
	sched  *scheduler
	silent bool // goes silent at Config.SilentAfter

	// Owned by the scheduler goroutine of the device.
	model      *Model
	faults     *rand.Rand
	cmdDice    *rand.Rand // command faults (Config.CommandFailRate)
	period     int64      // ns between two readings; set_interval changes it
	readingGen uint32     // generation of the reading chain: a task of another is dropped

	sendMu   sync.Mutex  // serializes transmissions of buffered readings
	resultMu sync.Mutex  // serializes transmissions of command results
	sending  entry       // the reading being transmitted; under sendMu
	muted    atomic.Bool // silent now: no pongs, no reconnects

	mu      sync.Mutex
	link    link
	buf     *sfBuffer
	seq     uint64     // seq of the next reading
	lastTS  int64      // device time of the last reading, Unix ms
	attempt int        // reconnect attempts since the last connection
	quiet   bool       // takes no more readings or heartbeats
	epoch   int        // seq epochs started by reboots
	boot    string     // boot id of the epoch; "" without one
	epochs  []epochLog // where each epoch's readings are in log; only with Config.Verify
	log     []logEntry // by reading number (entry.idx); only with Config.Verify
	seen    seenCommands
	results []*commandResult // command results not yet sent, oldest first
}

// epochLog says where the readings of one seq epoch are in the verify log:
// from firstIdx, with seqs from firstSeq, until the next epoch's firstIdx.
type epochLog struct {
	boot     string
	firstSeq uint64
	firstIdx int
	firstTS  int64 // device time of its first reading; 0 before it
}

// onReadingTick takes a reading, sends it, injects faults and schedules
// the next reading of chain generation gen; a tick of an older chain
// (before a set_interval) does nothing.
func (d *device) onReadingTick(at int64, gen uint32) {
	now := time.Now()
	if !d.takeDueReading(gen, now) {
		return
	}
	d.flush()
	d.injectFaults()
	next, mono := at+d.period, int64(now.Sub(d.s.start))
	if next < mono-d.period {
		next = mono // fell behind by more than a period: do not catch up in a burst
	}
	d.sched.add(task{at: next, dev: d, kind: taskReading, gen: gen})
}

// takeDueReading takes a reading unless readings are off, the device is
// quiet or gen is an older chain, and reports whether it took one. Run
// turns readings off and then waits until no reading is pending; a hold
// on pending, taken before readingsOn is read and released once the
// reading counts, makes sure a tick that still found readings on is
// waited for.
func (d *device) takeDueReading(gen uint32, now time.Time) bool {
	d.s.stats.pending.Add(1)
	defer d.s.stats.pending.Add(-1)
	if gen != d.readingGen || !d.s.readingsOn.Load() || d.isQuiet() {
		return false
	}
	d.takeReading(now)
	return true
}

// takeReading samples the models and appends the reading to the buffer.
func (d *device) takeReading(now time.Time) {
	r := d.model.Next(now)
	d.mu.Lock()
	ts := max(now.UnixMilli(), d.lastTS+2)
	d.lastTS = ts
	e := entry{seq: d.seq, ts: ts, noTS: d.s.cfg.NoClock, boot: d.boot, idx: len(d.log), r: r}
	d.seq++
	old, evicted := d.buf.Push(e)
	if d.s.record {
		d.log = append(d.log, logEntry{seq: e.seq, epoch: int32(d.epoch), ts: ts})
		if ep := &d.epochs[len(d.epochs)-1]; ep.firstTS == 0 {
			ep.firstTS = ts
		}
	}
	d.mu.Unlock()
	d.s.stats.readings.Add(1)
	d.s.stats.pending.Add(1)
	if evicted && !old.done {
		d.s.stats.discarded.Add(1)
		d.s.stats.pending.Add(-1)
	}
}

// injectFaults draws the fault dice of one reading (always, so that a run
// stays reproducible whatever the connection state) and acts on them.
func (d *device) injectFaults() {
	drop := d.faults.Float64() < d.s.cfg.DropRate
	bad := d.faults.Float64() < d.s.cfg.MalformedRate
	variant := d.faults.IntN(len(malformedWS))
	if d.s.cfg.RebootRate > 0 && d.faults.Float64() < d.s.cfg.RebootRate {
		d.reboot("")
		return
	}
	l := d.currentLink()
	if l == nil {
		return
	}
	if bad && l.malformed(variant) == nil {
		d.s.stats.malformed.Add(1)
	}
	if drop {
		d.s.stats.drops.Add(1)
		l.drop()
	}
}

// onHeartbeatTick sends a heartbeat and schedules the next one.
func (d *device) onHeartbeatTick(at int64) {
	if d.isQuiet() {
		return
	}
	if l := d.currentLink(); l != nil && l.heartbeat() == nil {
		d.s.stats.heartbeats.Add(1)
	}
	d.sched.add(task{at: at + int64(d.s.cfg.Heartbeat), dev: d, kind: taskHeartbeat})
}

// onSilenceTick stops readings and heartbeats, and mutes the device once
// every reading it took was confirmed, so that going silent loses nothing.
func (d *device) onSilenceTick(at int64) {
	d.mu.Lock()
	d.quiet = true
	settled := d.buf.Pending() == 0
	d.mu.Unlock()
	if settled {
		d.muted.Store(true)
		return
	}
	d.sched.add(task{at: at + int64(100*time.Millisecond), dev: d, kind: taskSilence})
}

func (d *device) isQuiet() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.quiet
}

func (d *device) currentLink() link {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.link
}

// flush transmits every buffered reading not yet sent on the current link.
// Whoever holds sendMu sends; the others leave their readings to it, and
// the holder looks again after letting go, so no reading is stranded.
func (d *device) flush() {
	for {
		if !d.sendMu.TryLock() {
			return
		}
		d.sendAll()
		d.sendMu.Unlock()
		if !d.hasUnsent() {
			return
		}
	}
}

// sendAll transmits readings until none is left or the link fails; the
// caller holds sendMu.
func (d *device) sendAll() {
	for {
		l := d.nextToSend(&d.sending)
		if l == nil {
			return
		}
		if err := l.send(&d.sending); err != nil {
			d.s.log.Debug("send failed", "device", d.id, "err", err)
			l.drop()
			d.lost(l)
			return
		}
		if !l.confirms() {
			d.complete(l.epoch(), d.sending.seq, false)
		}
	}
}

// nextToSend copies the next reading to transmit into dst, accounts for
// it and returns the link to send it on; nil when there is none.
func (d *device) nextToSend(dst *entry) link {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.link == nil || d.muted.Load() {
		return nil
	}
	p := d.buf.NextToSend()
	if p == nil {
		return nil
	}
	if p.sends > 0 {
		d.s.stats.resent.Add(1)
	} else {
		d.s.stats.sent.Add(1)
	}
	p.sends++
	p.sentAt = d.s.mono()
	if d.s.record {
		d.markSent(p.idx, p.sends > 1, d.link.confirms())
	}
	*dst = *p
	return d.link
}

func (d *device) markSent(idx int, resent, confirmable bool) {
	le := &d.log[idx]
	le.flags |= flagSent
	if resent {
		le.flags |= flagResent
	}
	if confirmable {
		le.flags |= flagConfirmable
	}
	le.sends = min(le.sends, 254) + 1
}

func (d *device) hasUnsent() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.link != nil && !d.muted.Load() && d.buf.HasUnsent()
}

// onAck handles the hub's confirmation of reading seq, on a link of seq
// epoch ep.
func (d *device) onAck(ep int, seq uint64) {
	now := d.s.mono()
	e, ok := d.complete(ep, seq, true)
	if ok {
		d.s.hist.Record(time.Duration(now - e.sentAt))
	}
}

// onError handles an error answer on a link of seq epoch ep; one naming a
// buffered reading's seq rejects that reading: the hub will not store it,
// and a resend could not change that.
func (d *device) onError(ep int, f hubFrame) {
	d.s.stats.errors.Add(1)
	if !f.HasSeq {
		return
	}
	d.mu.Lock()
	var e entry
	ok := ep == d.epoch
	if ok {
		e, ok = d.buf.Complete(f.Seq)
	}
	if ok && d.s.record {
		d.log[e.idx].flags |= flagRejected
	}
	d.mu.Unlock()
	if ok {
		d.s.stats.rejected.Add(1)
		d.s.stats.pending.Add(-1)
	}
}

// complete takes reading seq of epoch ep out of the buffer: acked by the
// hub, or handed to a transport without acks. A reading of an earlier
// epoch was lost at the reboot: nothing to do.
func (d *device) complete(ep int, seq uint64, acked bool) (entry, bool) {
	d.mu.Lock()
	var e entry
	ok := ep == d.epoch
	if ok {
		e, ok = d.buf.Complete(seq)
	}
	if ok && acked && d.s.record {
		d.log[e.idx].flags |= flagAcked
	}
	d.mu.Unlock()
	if !ok {
		return e, false
	}
	d.s.stats.pending.Add(-1)
	if acked {
		d.s.stats.acked.Add(1)
	} else {
		d.s.stats.unconfirmed.Add(1)
	}
	return e, true
}

// attach makes l the device's link and resends what is buffered.
func (d *device) attach(l link) {
	d.mu.Lock()
	ok := !l.dead() && !d.s.stopping.Load() && l.epoch() == d.epoch
	if ok {
		d.link, d.attempt = l, 0
		d.buf.Rewind()
	}
	d.mu.Unlock()
	if !ok {
		l.close()
		d.retry()
		return
	}
	d.s.stats.connects.Add(1)
	d.s.stats.online.Add(1)
	d.flushResults()
	d.flush()
}

// lost handles the end of link l; a late report about an older link is
// ignored.
func (d *device) lost(l link) {
	d.mu.Lock()
	current := d.link == l
	if current {
		d.link = nil
	}
	d.mu.Unlock()
	if !current {
		return
	}
	d.s.stats.disconnects.Add(1)
	d.s.stats.online.Add(-1)
	d.retry()
}

// retry schedules the next connection attempt after a backoff delay.
func (d *device) retry() {
	if d.s.stopping.Load() || d.muted.Load() {
		return
	}
	d.mu.Lock()
	n := d.attempt
	d.attempt++
	d.mu.Unlock()
	delay := d.s.backoff.Delay(n, rand.Float64())
	d.sched.add(task{at: d.s.mono() + int64(delay), dev: d, kind: taskConnect})
}

// detach takes the device's link away for the final close.
func (d *device) detach() link {
	d.mu.Lock()
	l := d.link
	d.link = nil
	d.mu.Unlock()
	if l != nil {
		d.s.stats.online.Add(-1)
	}
	return l
}

// currentEpoch returns the device's seq epoch, for a new link.
func (d *device) currentEpoch() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.epoch
}

// startEpoch begins seq epoch n at seq first: its boot id and, with
// Verify, where its readings start in the log. The caller holds d.mu or
// owns d.
func (d *device) startEpoch(n int, first uint64) {
	d.epoch, d.seq = n, first
	d.boot = d.s.bootID(n)
	if d.s.record {
		d.epochs = append(d.epochs, epochLog{boot: d.boot, firstSeq: first, firstIdx: len(d.log)})
	}
}

// reboot restarts the device as firmware without persistent storage
// would: the connection drops without a goodbye, the readings not yet
// confirmed are lost with the RAM, and the seq starts again at 1 in a new
// epoch. A connection attempt in flight is refused at attach (its epoch is
// over); otherwise the device reconnects at once. cmdID names the reboot
// command that asked for it, "" for a fault: the device keeps that
// command's id and answers it from the new boot (see forgetCommands).
// Commands seen and results not yet sent are lost.
func (d *device) reboot(cmdID string) {
	d.mu.Lock()
	l := d.link
	d.link = nil
	lost := d.buf.Pending()
	if d.s.record {
		d.buf.EachPending(func(e *entry) { d.log[e.idx].flags |= flagAbandoned })
	}
	d.buf = newBuffer(d.s.cfg.BufferSize)
	d.startEpoch(d.epoch+1, 1)
	d.forgetCommands(cmdID)
	d.attempt = 0
	d.mu.Unlock()
	d.s.stats.reboots.Add(1)
	d.s.stats.rebootLost.Add(uint64(lost))
	d.s.stats.pending.Add(-int64(lost))
	if l == nil {
		return // a reconnect is already scheduled or under way
	}
	d.s.stats.online.Add(-1)
	d.s.stats.disconnects.Add(1)
	l.drop()
	d.retry()
}
