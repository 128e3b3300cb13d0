package stream

import (
	"errors"
	"fmt"

	"github.com/telehub/telehub/internal/topic"
	"github.com/telehub/telehub/storage"
)

// replayChunk is how many records one replay write carries at most.
const replayChunk = 256

// Errors of replays.
var (
	// errReplay wraps every failure to read the log during a replay.
	errReplay = errors.New("replay")
	// errNoProgress: the log's Scan returned without moving forward.
	errNoProgress = errors.New("log scan made no progress")
)

// replay is a resume step queued in a watcher's backlog: write the logged
// events after the resume id from, up to upTo (the last published id when
// the watcher subscribed), that match.
type replay struct {
	from  string
	upTo  uint64
	match func(topic string) bool
	// live are the filters the watcher held already: their events after
	// their since went out live and are not replayed again.
	live []liveFilter
}

// liveFilter is a filter a watcher holds and the last published id when it
// was added.
type liveFilter struct {
	filter topic.Filter
	since  uint64
}

// dropLive removes from recs, in place, the records a live filter already
// delivered.
func (r *replay) dropLive(recs []storage.Record) []storage.Record {
	if len(r.live) == 0 {
		return recs
	}
	kept := recs[:0]
	for _, rec := range recs {
		if !r.wentLive(rec) {
			kept = append(kept, rec)
		}
	}
	return kept
}

func (r *replay) wentLive(rec storage.Record) bool {
	for _, l := range r.live {
		if rec.ID > l.since && l.filter.Match(rec.Topic) {
			return true
		}
	}
	return false
}

// anyMatch reports whether one of fs matches topic.
func anyMatch(fs []topic.Filter, topic string) bool {
	for _, f := range fs {
		if f.Match(topic) {
			return true
		}
	}
	return false
}

// replay writes r's events in chunks, each with one write. It starts with a
// reset, and from the oldest retained event, when the resume id is not one
// of this log's, is beyond upTo, or events after it were trimmed; trimming
// that overtakes the replay while it runs gets a reset too.
func (wr *writer) replay(r *replay) error {
	after, reset := wr.resumePoint(r)
	for {
		oldest, ok := wr.h.cfg.Log.OldestID()
		if reset || gapAfter(after, r.upTo, oldest, ok) {
			after, reset = wr.addReset(after, r.upTo, oldest, ok), false
		}
		if after >= r.upTo {
			return wr.flushScratch()
		}
		recs, next, err := wr.h.cfg.Log.Scan(after, r.upTo, r.match, replayChunk)
		if err != nil {
			return fmt.Errorf("%w after %d: %w", errReplay, after, err)
		}
		if next <= after {
			return fmt.Errorf("%w after %d: %w", errReplay, after, errNoProgress)
		}
		if skippedByTrim(wr.h.cfg.Log, after, r.upTo, recs) {
			continue // the next round resets
		}
		if err := wr.writeRecords(r.dropLive(recs)); err != nil {
			return err
		}
		after = next
	}
}

// resumePoint returns the id to replay after, or reset when the resume id
// is malformed, foreign, or beyond what the hub has published.
func (wr *writer) resumePoint(r *replay) (after uint64, reset bool) {
	seq, err := wr.h.ids.Parse(r.from)
	if err != nil || seq > r.upTo {
		wr.h.log.Debug("watcher resume from an unknown id", "id", r.from, "err", err)
		return 0, true
	}
	return seq, false
}

// skippedByTrim reports whether a scan from after may have skipped events
// that retention trimmed while it ran: the oldest retained event is now
// past after+1, and the scan did not visibly start at after+1.
func skippedByTrim(l Log, after, upTo uint64, recs []storage.Record) bool {
	if len(recs) > 0 && recs[0].ID == after+1 {
		return false
	}
	oldest, ok := l.OldestID()
	return gapAfter(after, upTo, oldest, ok)
}

// gapAfter reports whether events in (after, upTo] are no longer retained.
func gapAfter(after, upTo, oldest uint64, retained bool) bool {
	return after < upTo && (!retained || oldest > after+1)
}

// addReset queues the reset message and returns the id to replay after:
// just before the oldest retained event, or upTo when none is retained.
func (wr *writer) addReset(after, upTo, oldest uint64, retained bool) uint64 {
	id := ""
	if retained {
		id = wr.h.ids.Format(oldest)
	}
	wr.scratch = wr.w.format.appendReset(wr.scratch, id)
	if !retained {
		return max(after, upTo)
	}
	return oldest - 1
}

// writeRecords writes recs, after anything already in scratch, with one
// write.
func (wr *writer) writeRecords(recs []storage.Record) error {
	for i := range recs {
		wr.scratch = wr.w.format.appendEvent(wr.scratch, wr.h.ids, &recs[i])
	}
	wr.events += len(recs)
	return wr.flushScratch()
}

// flushScratch writes scratch, if not empty.
func (wr *writer) flushScratch() error {
	if len(wr.scratch) == 0 {
		return nil
	}
	wr.bufs = append(wr.bufs, wr.scratch)
	err := wr.flush()
	wr.scratch = wr.scratch[:0]
	if cap(wr.scratch) > keepBytes {
		wr.scratch = nil
	}
	return err
}
