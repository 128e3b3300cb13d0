package storage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// scanWindow is the most events one Scan looks at, so that its read
// transaction stays short.
const scanWindow = 4096

// Device is the record of one device.
type Device struct {
	ID string
	// Transport is the transport the device last used (bridge.TransportWS
	// or bridge.TransportMQTT), "" when unknown.
	Transport string
	// Online and Session are those of the last presence change recorded.
	Online  bool
	Session uint64
	// FirstSeen and LastSeen are the earliest and latest Seen times of the
	// device's stored writes; zero when no write carried one.
	FirstSeen, LastSeen time.Time
	// Metrics are the names of the metrics with a latest state, sorted.
	Metrics []string
	// Duplicates counts the device's writes acknowledged but not stored
	// again (their seq was already stored in its epoch); SeqRestarts the
	// seq epochs it started after its first (see MaxSeqGap and
	// bridge.Write); Boot is the boot of its current epoch, "" when none.
	Duplicates  uint64
	SeqRestarts uint64
	Boot        string
}

// MetricState is the latest state of one metric of a device.
type MetricState struct {
	Metric string
	// State is the bridge.Event.State bytes of the metric's latest event,
	// as stored.
	State json.RawMessage
}

// Scan returns the retained records with after < id <= upTo whose topic
// match accepts (nil match: all), oldest first, at most limit of them
// (limit <= 0: no limit but the window). One call looks at no more than
// 4096 records. next is the id of the last record it looked at: continue
// with after = next; next == upTo once the range is exhausted. Records'
// Data is a copy, the caller's to keep.
func (s *Store) Scan(after, upTo uint64, match func(topic string) bool, limit int) (recs []Record, next uint64, err error) {
	if after >= upTo {
		return nil, upTo, nil
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		sc := scan{after: after, upTo: upTo, match: match, limit: limit, next: after}
		err := sc.run(tx.Bucket(bucketEvents).Cursor())
		recs, next = sc.recs, sc.next
		return err
	})
	if err != nil {
		return nil, after, viewErr("scan", err)
	}
	s.withOrigins(recs)
	return recs, next, nil
}

// scan is the state of one Scan call.
type scan struct {
	after, upTo uint64
	match       func(string) bool
	limit       int

	recs   []Record
	next   uint64 // id of the last event looked at
	looked int    // events looked at
	evs    [][]byte
}

// run walks the records from the one holding event after+1 until the range,
// the window or the limit ends.
func (sc *scan) run(c *bolt.Cursor) error {
	for k, v := seekEvent(c, sc.after+1); k != nil; k, v = c.Next() {
		done, err := sc.record(getID(k), v)
		if err != nil || done {
			return err
		}
	}
	sc.next = sc.upTo
	return nil
}

// record looks at the events of the record with first id first, and
// reports whether the scan is done.
func (sc *scan) record(first uint64, v []byte) (done bool, err error) {
	sc.evs, err = decodeRecord(sc.evs[:0], v)
	if err != nil {
		return true, fmt.Errorf("event %d: %w", first, err)
	}
	for i, ev := range sc.evs {
		id := first + uint64(i)
		if id <= sc.after {
			continue
		}
		if id > sc.upTo {
			sc.next = sc.upTo
			return true, nil
		}
		if sc.looked == scanWindow || (sc.limit > 0 && len(sc.recs) == sc.limit) {
			return true, nil
		}
		sc.looked++
		sc.next = id
		rec, ok, err := readRecord(id, ev, sc.match)
		if err != nil {
			return true, err
		}
		if ok {
			sc.recs = append(sc.recs, rec)
		}
	}
	return false, nil
}

// seekEvent positions c on the record holding event id, or on the first
// record after it when no record holds it, and returns that record.
func seekEvent(c *bolt.Cursor, id uint64) (k, v []byte) {
	key := putID(nil, id)
	k, v = c.Seek(key)
	if k != nil && getID(k) == id {
		return k, v
	}
	// The record before the next one may start before id and hold it.
	var pk, pv []byte
	if k == nil {
		pk, pv = c.Last()
	} else {
		pk, pv = c.Prev()
	}
	if pk != nil && holds(pk, pv, id) {
		return pk, pv
	}
	return c.Seek(key)
}

// holds reports whether the record k, v holds event id, or cannot be read
// and might: ids are consecutive, so the record before the first one after
// id holds it unless id is past the end of the log.
func holds(k, v []byte, id uint64) bool {
	n, err := recordLen(v)
	return err != nil || getID(k)+n > id
}

// readRecord decodes the event stored under id when match accepts its
// topic, copying its bytes out of the transaction.
func readRecord(id uint64, v []byte, match func(string) bool) (Record, bool, error) {
	f, err := decodeEvent(v)
	if err != nil {
		return Record{}, false, fmt.Errorf("event %d: %w", id, err)
	}
	topic := string(f.topic)
	if match != nil && !match(topic) {
		return Record{}, false, nil
	}
	return Record{
		ID:    id,
		Kind:  f.kind,
		Topic: topic,
		Time:  time.UnixMilli(f.ms).UTC(),
		Data:  bytes.Clone(f.data),
	}, true, nil
}

// Devices returns the records of all devices, sorted by id.
func (s *Store) Devices() ([]Device, error) {
	var out []Device
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDevices).ForEach(func(k, v []byte) error {
			d, err := readDevice(k, v)
			if err != nil {
				return err
			}
			out = append(out, d)
			return nil
		})
	})
	if err != nil {
		return nil, viewErr("list devices", err)
	}
	return out, nil
}

// Device returns the record of device id and the latest state of each of
// its metrics, sorted by metric; ErrNotFound when the device is unknown.
func (s *Store) Device(id string) (Device, []MetricState, error) {
	var (
		d      Device
		states []MetricState
		found  bool
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketDevices).Get([]byte(id))
		if v == nil {
			return nil
		}
		found = true
		var err error
		if d, err = readDevice([]byte(id), v); err != nil {
			return err
		}
		states = readStates(tx.Bucket(bucketState), id)
		return nil
	})
	if err != nil {
		return Device{}, nil, viewErr("read device", err)
	}
	if !found {
		return Device{}, nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return d, states, nil
}

// readDevice decodes a device record into a Device.
func readDevice(k, v []byte) (Device, error) {
	r, err := decodeDevice(v)
	if err != nil {
		return Device{}, fmt.Errorf("device %q: %w", k, err)
	}
	return r.toDevice(string(k)), nil
}

// toDevice returns the public form of the record of device id.
func (r *deviceRec) toDevice(id string) Device {
	d := Device{
		ID:          id,
		Transport:   r.transport,
		Online:      r.online,
		Session:     r.session,
		Metrics:     r.metrics,
		Duplicates:  r.duplicates,
		SeqRestarts: r.restarts,
		Boot:        r.boot,
	}
	if r.firstMs != 0 {
		d.FirstSeen = time.UnixMilli(r.firstMs).UTC()
	}
	if r.lastMs != 0 {
		d.LastSeen = time.UnixMilli(r.lastMs).UTC()
	}
	if d.Metrics == nil {
		d.Metrics = []string{}
	}
	return d
}

// readStates returns copies of the latest states of device's metrics.
func readStates(b *bolt.Bucket, device string) []MetricState {
	prefix := stateKey(nil, device, "")
	var out []MetricState
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		out = append(out, MetricState{
			Metric: string(k[len(prefix):]),
			State:  bytes.Clone(v),
		})
	}
	return out
}
