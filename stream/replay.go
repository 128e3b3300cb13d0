package stream

import (
	"errors"
	"fmt"
	"time"

	"github.com/telehub/telehub/internal/topic"
	"github.com/telehub/telehub/storage"
)

// replayChunk is how many records one replay write carries at most.
const replayChunk = 256

// errReplay wraps every failure to read the log during a replay.
var errReplay = errors.New("replay")

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
// that overtakes the replay while it runs gets a reset too. An id minted by
// a peer hub of the cluster gets a reset naming since, and the replay
// starts at this log's events of that time.
func (wr *writer) replay(r *replay) error {
	after, start := wr.resumePoint(r)
	for {
		if start.reset {
			after = wr.addReset(after, r.upTo, start.since)
			start = resume{}
		}
		if after >= r.upTo {
			return wr.flushScratch()
		}
		recs, next, err := storage.ReadAfter(wr.h.cfg.Log, after, r.upTo, r.match, replayChunk)
		if err != nil && !errors.Is(err, storage.ErrExpired) {
			return fmt.Errorf("%w: %w", errReplay, err)
		}
		if werr := wr.writeRecords(r.dropLive(recs)); werr != nil {
			return werr
		}
		// On a gap, the records before it went out; a reset follows.
		after, start.reset = next, err != nil
	}
}

// resume says how a replay starts when not simply after the resume id: with
// a reset, from the oldest retained event, or, when since is set, after the
// resume point returned with it.
type resume struct {
	reset bool
	since time.Time
}

// resumePoint returns the id to replay after, and a reset when the resume
// id is malformed, foreign, no longer retained, or beyond what the hub has
// published; a peer hub's id gets a reset with since and the id to replay
// its time from.
func (wr *writer) resumePoint(r *replay) (after uint64, start resume) {
	seq, err := storage.ResumePoint(wr.h.cfg.Log, r.from, r.upTo)
	var gap *storage.GapError
	switch {
	case errors.As(err, &gap) && gap.Peer():
		wr.h.log.Debug("watcher resumes from a peer hub's id", "id", r.from, "since", gap.Since)
		return gap.After, resume{reset: true, since: gap.Since}
	case err != nil:
		wr.h.log.Debug("watcher resumes from an unknown or expired id", "id", r.from, "err", err)
		return 0, resume{reset: true}
	}
	return seq, resume{}
}

// addReset queues the reset message and returns the id to replay after.
// With since zero: just before the oldest retained event, or upTo when none
// is retained. With since set the replay goes on after after, unless
// retention trimmed past it meanwhile.
func (wr *writer) addReset(after, upTo uint64, since time.Time) uint64 {
	id, oldest, retained := storage.FormatOldest(wr.h.cfg.Log)
	wr.scratch = wr.w.format.appendReset(wr.scratch, id, since)
	switch {
	case !retained:
		return max(after, upTo)
	case since.IsZero():
		return oldest - 1
	}
	return max(after, oldest-1)
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
