package storage

import (
	"time"

	"github.com/telehub/telehub/bridge"
)

// maxArena is the capacity above which the encoding buffer is dropped after
// a commit instead of being kept for the next one.
const maxArena = 16 << 20

// maxCachedDevices bounds the writer's cache of device records: past it the
// cache is dropped and refilled from the file on use, so that a stream of
// new device ids cannot grow it without end.
var maxCachedDevices = 1 << 17

// writer is the state of the writer goroutine; nothing else touches it
// while the goroutine runs.
type writer struct {
	nextID   uint64 // id of the next event appended
	oldest   uint64 // oldest retained id, 0 = none
	oldestMs int64  // Record.Time of the oldest retained event, unix ms

	// devices caches committed device records, loaded on first use; a nil
	// value means the device is not in the file.
	devices map[string]*deviceRec
	// pending holds the records changed by the batch being committed;
	// they replace the cached ones only after the commit succeeded.
	pending map[string]*deviceRec

	// stateIdx indexes states by device and metric: the latest state of
	// each that the batch wrote, in order of first appearance.
	stateIdx map[stateRef]int
	states   []stateVal

	// Buffers reused from batch to batch.
	batch   []*bridge.Write
	results []bridge.Result
	recs    []Record
	arena   []byte   // encoded values of the batch; bbolt keeps them until commit
	key     []byte   // scratch key; bbolt copies keys it keeps
	scratch []byte   // scratch encoding of one event
	evs     [][]byte // scratch encoded events of one record

	ix indexer // topic index keys the batch adds and trim deletes

	cmdPrune commandPruner // where pruning of finished commands stands

	// origins holds the highest origin id per node and device that the
	// batch stored (see originSeen).
	origins map[string]uint64
	// txMs is the start of the batch's transaction, unix ms: the commit
	// time outbox messages carry.
	txMs int64

	appended int // events appended by the batch
	dups     int // duplicate writes in the batch
	restarts int // seq epochs the batch started
	fills    int // peer readings the batch stored below their epoch's last seq
	merges   int // seq range merges the batch made to keep the ranges bounded
}

func newWriter() writer {
	return writer{
		devices:  make(map[string]*deviceRec),
		pending:  make(map[string]*deviceRec),
		stateIdx: make(map[stateRef]int),
		origins:  make(map[string]uint64),
	}
}

// stateRef names the latest state of one metric of one device.
type stateRef struct{ device, metric string }

// stateVal is a latest state the batch writes.
type stateVal struct {
	stateRef
	state []byte
}

// retained returns the number of retained events: ids are assigned
// consecutively and trimmed oldest first, so they form one range.
func (w *writer) retained() uint64 {
	if w.oldest == 0 {
		return 0
	}
	return w.nextID - w.oldest
}

// rangeState is the part of the writer state a failed commit restores.
type rangeState struct {
	nextID   uint64
	oldest   uint64
	oldestMs int64
}

func (w *writer) saveRange() rangeState {
	return rangeState{nextID: w.nextID, oldest: w.oldest, oldestMs: w.oldestMs}
}

func (w *writer) restoreRange(r rangeState) {
	w.nextID, w.oldest, w.oldestMs = r.nextID, r.oldest, r.oldestMs
}

// startBatch resets the per-batch state.
func (w *writer) startBatch() {
	clear(w.pending)
	clear(w.origins)
	clear(w.stateIdx)
	w.states = w.states[:0]
	w.results = w.results[:0]
	w.recs = w.recs[:0]
	w.arena = w.arena[:0]
	w.appended, w.dups, w.restarts, w.fills, w.merges = 0, 0, 0, 0, 0
	w.ix.reset()
}

// endBatch drops the references the batch buffers hold, so that committed
// data is not kept alive by the writer.
func (w *writer) endBatch() {
	clear(w.batch)
	clear(w.recs)
	clear(w.pending)
	clear(w.stateIdx)
	clear(w.states)
	w.batch = w.batch[:0]
	if cap(w.arena) > maxArena {
		w.arena = nil
	}
}

// run is the writer goroutine: it commits queued writes in batches, trims
// retention when idle, and on drain commits what is left and exits.
func (s *Store) run() {
	defer close(s.done)
	tick := time.NewTicker(s.cfg.TrimInterval)
	defer tick.Stop()
	for {
		select {
		case wr := <-s.queue:
			s.commit(s.collect(wr))
		case req := <-s.deletes:
			s.deleteDevice(req)
		case <-tick.C:
			s.trimIdle()
			s.pruneIdle()
			s.probe()
		case <-s.drain:
			s.flush()
			return
		}
	}
}

// collect returns a batch of first and whatever else is queued, up to
// MaxBatch writes, without waiting.
func (s *Store) collect(first *bridge.Write) []*bridge.Write {
	b := append(s.w.batch[:0], first)
	defer func() { s.w.batch = b }()
	for len(b) < s.cfg.MaxBatch {
		select {
		case wr := <-s.queue:
			b = append(b, wr)
		default:
			return b
		}
	}
	return b
}

// flush commits everything left in the queue. It runs after drain was
// closed, when no Submit can add more.
func (s *Store) flush() {
	for {
		select {
		case wr := <-s.queue:
			s.commit(s.collect(wr))
		default:
			return
		}
	}
}

// setKey keeps k's buffer as the scratch key for the next one and returns k.
func (w *writer) setKey(k []byte) []byte {
	w.key = k
	return k
}
