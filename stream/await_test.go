package stream

import (
	"net/http"
	"testing"
	"time"

	"github.com/telehub/telehub/storage"
)

// publishWhenAwaited publishes recs once a watcher waits for them in
// awaitPublished, from another goroutine: the watcher's open returns only
// after that.
func publishWhenAwaited(th *testHub, recs []storage.Record) (done chan bool) {
	done = make(chan bool, 1)
	go func() {
		deadline := time.Now().Add(guard)
		for {
			th.Hub.mu.Lock()
			waiting := th.Hub.awaiting
			th.Hub.mu.Unlock()
			if waiting > 0 {
				break
			}
			if time.Now().After(deadline) {
				done <- false
				return
			}
			time.Sleep(time.Millisecond)
		}
		th.Hub.Publish(recs)
		done <- true
	}()
	return done
}

// A watcher resuming from an event that is committed but not yet
// published (its id read from GET /v1/events a moment after the commit)
// waits for its publication: no reset, nothing before it again.
func TestSSEResumeFromCommittedNotYetPublished(t *testing.T) {
	th := newTestHub(t, Config{})
	commit(th.Hub, th.log, repeat("telemetry/d1/temp", 10)...)
	recs := th.log.add(repeat("telemetry/d1/temp", 3)...) // 11..13, committed only
	published := publishWhenAwaited(th, recs)
	s := openSSE(t, th, "", http.Header{"Last-Event-Id": {th.log.ids.Format(12)}})
	if !<-published {
		t.Fatal("the watcher did not wait for the event it resumed from")
	}
	if ev := s.nextEvent(); ev.event != "telemetry" || ev.id != th.log.ids.Format(13) {
		t.Fatalf("first event %+v, want event 13", ev)
	}
	commit(th.Hub, th.log, "telemetry/d1/temp")
	if ev := s.nextEvent(); ev.id != th.log.ids.Format(14) {
		t.Fatalf("next event %+v, want 14", ev)
	}
}

// The same for a WebSocket watcher's subscribe.
func TestWSResumeFromCommittedNotYetPublished(t *testing.T) {
	th := newTestHub(t, Config{})
	commit(th.Hub, th.log, repeat("telemetry/d1/temp", 10)...)
	recs := th.log.add(repeat("telemetry/d1/temp", 3)...)
	published := publishWhenAwaited(th, recs)
	c := dialWS(t, th, nil)
	c.subscribe(th.log.ids.Format(12), "telemetry/#")
	if !<-published {
		t.Fatal("the watcher did not wait for the event it resumed from")
	}
	wantEvent(t, th.log.ids, c.next(), recs[2])
}

// An event committed and never published (which the hub never does) holds
// the watcher up for publishWait only; it then resumes with a reset.
func TestResumeFromUnpublishedGivesUp(t *testing.T) {
	th := newTestHub(t, Config{})
	commit(th.Hub, th.log, repeat("telemetry/d1/temp", 10)...)
	th.log.add("telemetry/d1/temp") // 11, never published
	s := openSSE(t, th, "", http.Header{"Last-Event-Id": {th.log.ids.Format(11)}})
	if ev := s.nextEvent(); ev.event != "reset" {
		t.Fatalf("got %+v, want a reset", ev)
	}
}
