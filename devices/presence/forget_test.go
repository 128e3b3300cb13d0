package presence

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"testing"
	"testing/synctest"
	"time"

	"github.com/telehub/telehub/bridge"
)

// newForgetfulTracker returns a started Tracker that forgets offline
// devices after forget and reads them back from records.
func newForgetfulTracker(t *testing.T, rec *recordingSink, records *fakeRecords, forget time.Duration) *Tracker {
	t.Helper()
	l, err := New(Config{Sink: rec, Records: records, Timeout: 45 * time.Second, ForgetAfter: forget})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Shutdown(context.Background()) })
	return l
}

// held reports whether l holds device in memory.
func held(l *Tracker, device string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.devices[device] != nil
}

func TestTrackerForgetsOfflineDevices(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		records := &fakeRecords{}
		rec := &recordingSink{records: records}
		l := newForgetfulTracker(t, rec, records, time.Minute)
		for range 2 {
			s := l.Connect("d1", "ws", bridge.ReasonConnect)
			l.Disconnect("d1", s, bridge.ReasonDisconnect)
		}
		l.Connect("online", "ws", bridge.ReasonConnect)
		time.Sleep(time.Minute - time.Second)
		synctest.Wait()
		if !held(l, "d1") {
			t.Fatal("d1 forgotten before ForgetAfter")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if held(l, "d1") {
			t.Fatal("d1 still held ForgetAfter after it went offline")
		}
		if _, _, _, ok := l.LastSeen("d1"); ok {
			t.Fatal("LastSeen of a forgotten device: ok")
		}
		if !held(l, "online") {
			t.Fatal("an online device was forgotten")
		}
		// Back again: its sessions go on from the stored record.
		if s := l.Connect("d1", "ws", bridge.ReasonConnect); s != 3 {
			t.Fatalf("session after forgetting = %d, want 3", s)
		}
		if s, started := l.Heard("d2", "mqtt"); s != 1 || !started {
			t.Fatalf("Heard of a device never stored = %d, %v; want 1, true", s, started)
		}
	})
}

// A device whose offline event is not stored yet stays in memory: the
// stored record it would be read back from is not up to date.
func TestTrackerKeepsDevicesWithUnstoredEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		records := &fakeRecords{}
		rec := &recordingSink{records: records, holdDone: true}
		l := newForgetfulTracker(t, rec, records, time.Minute)
		s := l.Connect("d1", "ws", bridge.ReasonConnect)
		l.Disconnect("d1", s, bridge.ReasonDisconnect)
		time.Sleep(3 * time.Minute)
		synctest.Wait()
		if !held(l, "d1") {
			t.Fatal("d1 forgotten while its events were not stored")
		}
		rec.release()
		time.Sleep(time.Minute)
		synctest.Wait()
		if held(l, "d1") {
			t.Fatal("d1 still held after its events were stored")
		}
	})
}

// A device read while storage fails starts again at session 1, and the
// failure is logged; an unreadable store does not stop the device.
func TestTrackerRecordsError(t *testing.T) {
	records := &fakeRecords{err: errors.New("disk on fire")}
	l := newForgetfulTracker(t, &recordingSink{}, records, time.Minute)
	if s := l.Connect("d1", "ws", bridge.ReasonConnect); s != 1 {
		t.Fatalf("session = %d, want 1", s)
	}
}

// heapBytes returns the bytes of live heap objects after a collection.
func heapBytes() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// 200 000 distinct devices come and go, a wave of 2 000 every half
// ForgetAfter: the Tracker holds the devices of the last ForgetAfter only,
// so its memory after all of them is what it was after the first 20 000.
// Were devices kept, it would grow by some 40 MB (about 200 bytes each).
func TestTrackerMemoryFlatOverDistinctDevices(t *testing.T) {
	const (
		total  = 200_000
		wave   = 2_000
		forget = time.Minute
		bound  = 1 << 20 // bytes the heap may grow between the two readings
	)
	synctest.Test(t, func(t *testing.T) {
		rec := &recordingSink{discard: true}
		l := newForgetfulTracker(t, rec, &fakeRecords{}, forget)
		ids := make([]string, wave) // reused: the ids' own memory is not the Tracker's
		var before uint64
		for w := range total / wave {
			for i := range ids {
				ids[i] = fmt.Sprintf("dev-%d-%d", w, i)
				s := l.Connect(ids[i], "ws", bridge.ReasonConnect)
				l.Disconnect(ids[i], s, bridge.ReasonDisconnect)
			}
			time.Sleep(forget / 2)
			synctest.Wait()
			if w == 9 {
				before = heapBytes()
			}
		}
		after := heapBytes()
		l.mu.Lock()
		n := len(l.devices)
		l.mu.Unlock()
		t.Logf("heap after %d devices: %d bytes; after %d: %d bytes; %d devices held", 10*wave, before, total, after, n)
		if n > 3*wave {
			t.Fatalf("%d devices held, want at most %d", n, 3*wave)
		}
		if after > before+bound {
			t.Fatalf("heap grew by %d bytes over %d devices, bound %d", after-before, total-10*wave, bound)
		}
	})
}
