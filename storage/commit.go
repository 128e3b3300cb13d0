package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/telehub/telehub/bridge"
)

// trimBase is the number of events a transaction may trim beyond twice the
// number it appends.
const trimBase = 1024

// buckets are the buckets a batch writes to.
type buckets struct {
	tx                     *bolt.Tx
	events, state, devices *bolt.Bucket
	commands               commandBuckets
}

// commit stores batch in one transaction, then reports the outcome: on
// success the new range, OnCommit and every Done; on failure the error to
// every Done, with the in-memory state rolled back.
func (s *Store) commit(batch []*bridge.Write) {
	defer s.w.endBatch()
	saved := s.w.saveRange()
	start := time.Now()
	var size int64
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := s.apply(tx, batch); err != nil {
			return err
		}
		size = tx.Size()
		return nil
	})
	s.met.CommitDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		s.w.restoreRange(saved)
		s.w.cmdPrune = commandPruner{} // its deletions were rolled back
		s.fail(batch, err)
		return
	}
	s.committed(batch, size)
}

// committed publishes a successful commit: metrics, range, OnCommit, Done.
func (s *Store) committed(batch []*bridge.Write, size int64) {
	s.writeOK()
	w := &s.w
	if len(w.devices) > maxCachedDevices {
		clear(w.devices) // refilled from the file as devices write again
	}
	for id, r := range w.pending {
		w.devices[id] = r
	}
	s.met.CommitBatch.Observe(float64(len(batch)))
	s.met.EventsStored.Add(float64(w.appended))
	s.met.Duplicates.Add(float64(w.dups))
	s.met.SeqRestarts.Add(float64(w.restarts))
	s.met.SeqFills.Add(float64(w.fills))
	s.met.SeqRangeMerges.Add(float64(w.merges))
	s.met.StorageBytes.Set(float64(size))
	s.publishRange()
	if s.cfg.Synced != nil {
		s.cfg.Synced(s.LastID())
	}
	if len(w.recs) > 0 && s.cfg.OnCommit != nil {
		s.withOrigins(w.recs)
		s.cfg.OnCommit(w.recs)
	}
	for i, wr := range batch {
		if wr.Done != nil {
			wr.Done(w.results[i])
		}
	}
}

// fail reports a failed commit to every write of the batch.
func (s *Store) fail(batch []*bridge.Write, err error) {
	err = fmt.Errorf("storage: commit batch of %d writes: %w", len(batch), fullError(err))
	s.writeFailed("commit", len(batch), len(s.w.arena), err)
	for _, wr := range batch {
		if wr.Done != nil {
			wr.Done(bridge.Result{Err: err})
		}
	}
}

// apply writes batch into tx: events, state, device records, retention and
// the id high-water mark.
func (s *Store) apply(tx *bolt.Tx, batch []*bridge.Write) error {
	w := &s.w
	w.startBatch()
	w.txMs = s.cfg.Now().UnixMilli()
	b := buckets{
		tx:      tx,
		events:  tx.Bucket(bucketEvents),
		state:   tx.Bucket(bucketState),
		devices: tx.Bucket(bucketDevices),
	}
	b.events.FillPercent = 1.0
	for _, wr := range batch {
		if wr.ForwardedUpTo != 0 {
			if err := deleteOutbox(tx, wr.ForwardedUpTo); err != nil {
				return err
			}
			w.results = append(w.results, bridge.Result{})
			continue
		}
		apply := s.applyWrite
		if wr.Command != nil {
			if b.commands.cmds == nil {
				b.commands = s.openCommandBuckets(tx)
			}
			apply = s.applyCommand
		}
		res, err := apply(b, wr)
		if err != nil {
			return err
		}
		w.results = append(w.results, res)
	}
	if err := w.putStates(b.state); err != nil {
		return err
	}
	if err := w.putDevices(b.devices); err != nil {
		return err
	}
	if err := w.putOrigins(tx); err != nil {
		return err
	}
	if err := w.ix.putAdded(tx); err != nil {
		return err
	}
	if _, err := s.trim(tx, 2*w.appended+trimBase); err != nil {
		return err
	}
	if _, err := s.pruneCommands(tx, commandPruneChunk); err != nil {
		return err
	}
	if w.appended == 0 {
		return nil
	}
	return tx.Bucket(bucketMeta).Put(metaHighWater, putID(w.key[:0], w.nextID-1))
}

// applyWrite stores one write, or nothing when its seq is a duplicate in
// its epoch (counted on the device record) or its device record cannot be
// read (then the Result carries the error). The epoch state is part of the
// device record, so it commits with the write. An error return fails the
// whole transaction.
func (s *Store) applyWrite(b buckets, wr *bridge.Write) (bridge.Result, error) {
	w := &s.w
	rec, err := w.device(b.devices, wr.Device)
	if errors.Is(err, ErrCorrupt) {
		// Only this write fails: one bad record must not stop the others.
		s.log.Error("write refused", "device", wr.Device, "err", err)
		return bridge.Result{Err: fmt.Errorf("storage: %w", err)}, nil
	}
	if err != nil {
		return bridge.Result{}, err
	}
	if wr.Origin != nil {
		seen, err := w.originSeen(b.tx, wr)
		if err != nil || seen {
			return bridge.Result{Duplicate: seen}, err
		}
	}
	if wr.HasSeq {
		v := rec.seqVerdict(wr)
		if v == seqDuplicate {
			rec.duplicates++
			w.dups++
			return bridge.Result{Duplicate: true}, nil
		}
		switch v {
		case seqEpoch:
			w.restarts++
		case seqFill:
			w.fills++
		}
		if rec.advance(wr, v) {
			w.merges++
		}
	}
	seen := wr.Seen
	if seen.IsZero() {
		seen = s.cfg.Now()
	}
	var res bridge.Result
	if len(wr.Events) > 0 {
		res.FirstID = w.nextID
		if err := w.putRecord(b, rec, wr, seen.UnixMilli()); err != nil {
			return bridge.Result{}, err
		}
		if wr.Outbox != nil {
			if err := w.putOutbox(b.tx, res.FirstID, w.txMs, seen.UnixMilli(), wr.Outbox); err != nil {
				return bridge.Result{}, err
			}
		}
	}
	rec.touch(wr)
	return res, nil
}

// putRecord appends the events of wr, at least one, as one record under the
// next id, and updates the latest state of their metrics.
func (w *writer) putRecord(b buckets, rec *deviceRec, wr *bridge.Write, ms int64) error {
	first := w.nextID
	start := len(w.arena)
	w.arena = binary.AppendUvarint(w.arena, uint64(len(wr.Events)))
	for i := range wr.Events {
		w.addEvent(rec, wr.Device, &wr.Events[i], ms)
	}
	// bbolt keeps the value until the commit; later appends to the arena
	// never write into it.
	if err := b.events.Put(w.setKey(putID(w.key[:0], first)), w.arena[start:]); err != nil {
		return fmt.Errorf("events %d..%d: %w", first, w.nextID-1, err)
	}
	if w.oldest == 0 {
		w.oldest, w.oldestMs = first, ms
	}
	return nil
}

// addEvent appends e to the record being built in the arena under the next
// id, and records its Record and the latest state of its metric.
func (w *writer) addEvent(rec *deviceRec, device string, e *bridge.Event, ms int64) {
	id := w.nextID
	w.arena, w.scratch = appendRecordEvent(w.arena, w.scratch, e.Kind, ms, e.Topic, e.Data)
	w.ix.added(e.Topic, id)
	w.nextID++
	w.appended++
	w.recs = append(w.recs, Record{ID: id, Kind: e.Kind, Topic: e.Topic, Time: time.UnixMilli(ms).UTC(), Data: e.Data})
	if e.Metric == "" || e.State == nil {
		return
	}
	w.setState(device, e.Metric, e.State)
	rec.addMetric(e.Metric)
}

// setState records state as the batch's latest of device and metric; only
// the last one of the batch is written.
func (w *writer) setState(device, metric string, state []byte) {
	ref := stateRef{device: device, metric: metric}
	if i, ok := w.stateIdx[ref]; ok {
		w.states[i].state = state
		return
	}
	w.stateIdx[ref] = len(w.states)
	w.states = append(w.states, stateVal{stateRef: ref, state: state})
}

// putStates stores the latest states the batch recorded.
func (w *writer) putStates(bucket *bolt.Bucket) error {
	for _, v := range w.states {
		if err := bucket.Put(w.setKey(stateKey(w.key[:0], v.device, v.metric)), v.state); err != nil {
			return fmt.Errorf("state of %s/%s: %w", v.device, v.metric, err)
		}
	}
	return nil
}

// device returns the batch's working copy of the record of id, loading the
// committed one on first use.
func (w *writer) device(devs *bolt.Bucket, id string) (*deviceRec, error) {
	if r, ok := w.pending[id]; ok {
		return r, nil
	}
	base, ok := w.devices[id]
	if !ok {
		if v := devs.Get([]byte(id)); v != nil {
			r, err := decodeDevice(v)
			if err != nil {
				return nil, fmt.Errorf("device %q: %w", id, err)
			}
			base = &r
		}
		w.devices[id] = base
	}
	r := new(deviceRec)
	if base != nil {
		*r = *base // metrics is shared: addMetric never changes it in place
	} else {
		session, err := takeSession(devs.Tx(), id)
		if err != nil {
			return nil, err
		}
		r.session = session // a deleted device's sessions go on
	}
	w.pending[id] = r
	return r, nil
}

// putDevices stores the records the batch changed.
func (w *writer) putDevices(devs *bolt.Bucket) error {
	for id, r := range w.pending {
		start := len(w.arena)
		w.arena = appendDevice(w.arena, r)
		if err := devs.Put([]byte(id), w.arena[start:]); err != nil {
			return fmt.Errorf("device %q: %w", id, err)
		}
	}
	return nil
}

// touch applies a stored write's bookkeeping to the record: last seen,
// transport and presence (the seq is advance's).
func (r *deviceRec) touch(wr *bridge.Write) {
	if !wr.Seen.IsZero() {
		ms := wr.Seen.UnixMilli()
		if r.firstMs == 0 {
			r.firstMs = ms
		}
		r.lastMs = max(r.lastMs, ms)
	}
	if wr.Transport != "" {
		r.transport = wr.Transport
	}
	if p := wr.Presence; p != nil {
		r.online, r.session = p.Online, p.Session
		if p.Transport != "" {
			r.transport = p.Transport
		}
	}
}

// addMetric adds m to the record's sorted metric names. It makes a new
// slice: the old one may be shared with the committed record.
func (r *deviceRec) addMetric(m string) {
	i, found := slices.BinarySearch(r.metrics, m)
	if found {
		return
	}
	r.metrics = slices.Insert(slices.Clip(r.metrics), i, m)
}
