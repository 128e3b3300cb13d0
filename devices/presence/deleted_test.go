package presence

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/telehub/telehub/bridge"
)

// A forgotten device emits nothing: not for the end of its old session,
// not when its deadline comes due; its next sign of life starts it anew.
func TestTrackerForgetDeleted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, rec := newTestTracker(t)
		session := l.Connect("d1", "ws", bridge.ReasonConnect)
		l.Connect("d1", "ws", bridge.ReasonConnect)
		rec.take()

		l.Forget("d1")
		l.Forget("never-seen")
		if _, _, _, ok := l.LastSeen("d1"); ok {
			t.Fatal("LastSeen still knows the forgotten device")
		}
		l.Disconnect("d1", session+1, bridge.ReasonDisconnect)
		time.Sleep(time.Minute) // past the old deadline
		synctest.Wait()
		wantEvents(t, rec.take())

		l.Heard("d1", "mqtt")
		wantEvents(t, rec.take(), "d1 online=true mqtt session=1 message")
	})
}

// A device recorded online and forgotten before Start is not marked
// offline by Start: it is gone.
func TestTrackerForgetDeletedBeforeStart(t *testing.T) {
	rec := &recordingSink{}
	l, err := New(Config{Sink: rec, Known: []Record{{ID: "d1", Online: true, Session: 4}}, Timeout: 45 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Shutdown(context.Background()) }()
	l.Forget("d1")
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, rec.take())
}
