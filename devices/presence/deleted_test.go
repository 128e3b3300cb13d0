package presence

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/telehub/telehub/bridge"
)

// A deleted device that was online goes offline with reason disconnect,
// once; after that nothing is emitted for it: not for the end of an old
// session, not when its deadline comes due. Its next sign of life starts
// the session after the last one stored.
func TestTrackerDelete(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		records := &fakeRecords{}
		rec := &recordingSink{records: records}
		l := newForgetfulTracker(t, rec, records, time.Hour)
		session := l.Connect("d1", "ws", bridge.ReasonConnect)
		l.Connect("d1", "ws", bridge.ReasonConnect)
		rec.take()

		l.Delete("d1")
		wantEvents(t, rec.take(), "d1 online=false ws session=2 disconnect")
		l.Delete("d1")
		l.Delete("never-seen")
		if _, _, _, ok := l.LastSeen("d1"); ok {
			t.Fatal("LastSeen still knows the deleted device")
		}
		l.Disconnect("d1", session+1, bridge.ReasonDisconnect)
		time.Sleep(time.Minute) // past the old deadline
		synctest.Wait()
		wantEvents(t, rec.take())

		l.Heard("d1", "mqtt")
		wantEvents(t, rec.take(), "d1 online=true mqtt session=3 message")
	})
}

// A device offline when it is deleted gets no event.
func TestTrackerDeleteOffline(t *testing.T) {
	l, rec := newTestTracker(t)
	s := l.Connect("d1", "ws", bridge.ReasonConnect)
	l.Disconnect("d1", s, bridge.ReasonDisconnect)
	rec.take()
	l.Delete("d1")
	wantEvents(t, rec.take())
}

// A sign of life while the offline event of the delete waits for the
// store takes the next session, after that event: the device is live and
// stays held.
func TestTrackerDeleteHeardMeanwhile(t *testing.T) {
	l, rec := newTestTracker(t)
	l.Connect("d1", "ws", bridge.ReasonConnect)
	rec.take()
	blocked, release := rec.block("d1")
	deleted := make(chan struct{})
	go func() {
		defer close(deleted)
		l.Delete("d1")
	}()
	<-blocked
	heard := make(chan struct{})
	go func() {
		defer close(heard)
		l.Heard("d1", "ws")
	}()
	waitTurn(t, l, "d1")
	release()
	<-deleted
	<-heard
	wantEvents(t, rec.take(), "d1 online=false ws session=1 disconnect", "d1 online=true ws session=2 message")
	if s, online := l.Session("d1"); s != 2 || !online {
		t.Fatalf("session %d online %v, want 2 online", s, online)
	}
}

// waitTurn waits until a change of device waits for its turn.
func waitTurn(t *testing.T, l *Tracker, device string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		d := l.devices[device]
		waiting := d != nil && d.waiting > 0
		l.mu.Unlock()
		if waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no change waits for its turn")
		}
		time.Sleep(time.Millisecond)
	}
}

// A device recorded online and deleted before Start is not marked
// offline by Start: it is gone.
func TestTrackerDeleteBeforeStart(t *testing.T) {
	rec := &recordingSink{}
	l, err := New(Config{Sink: rec, Known: []Record{{ID: "d1", Online: true, Session: 4}}, Timeout: 45 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Shutdown(context.Background()) }()
	l.Delete("d1")
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, rec.take())
}
