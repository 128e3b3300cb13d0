package stream

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/storage"
)

// peerMargin is the resume margin of the cluster tests' hub.
const peerMargin = 3 * time.Second

// peerResumeCases are resumes of a hub in a cluster whose log retains
// events 6..20 (event id at fakeTime(id)) from another hub's id.
var peerResumeCases = []struct {
	name     string
	from     string
	since    time.Time // zero: a plain reset from the oldest
	replayed []uint64
}{
	{"a peer's id", peerID(fakeTime(15)), fakeTime(12), idSeq(12, 20)},
	{"a peer's id older than the log", peerID(fakeTime(2)), fakeEpoch.Add(-time.Second), idSeq(6, 20)},
	{"a peer's id newer than the log", peerID(fakeTime(40)), fakeTime(37), nil},
	{"another hub's id without a time", storage.NewIDCodec("hubB").Format(15), time.Time{}, idSeq(6, 20)},
}

// peerID is an id of the peer hub hubB of an event at t.
func peerID(t time.Time) string { return storage.NewIDCodec("hubB").InCluster(0).FormatAt(99, t) }

func idSeq(from, to uint64) []uint64 {
	var out []uint64
	for id := from; id <= to; id++ {
		out = append(out, id)
	}
	return out
}

// newClusterHub returns a test hub in a cluster whose log retains events
// 6..20.
func newClusterHub(t *testing.T) *testHub {
	t.Helper()
	l := newFakeLog("hubA")
	l.ids = l.ids.InCluster(peerMargin)
	th := newTestHub(t, Config{Log: l})
	commit(th.Hub, th.log, repeat("telemetry/d1/temp", 20)...)
	th.log.trim(5)
	return th
}

// clusterID is the id a cluster hub's watchers see for event id.
func clusterID(th *testHub, id uint64) string { return th.log.ids.FormatAt(id, fakeTime(id)) }

func TestSSEResumeFromPeer(t *testing.T) {
	for _, tt := range peerResumeCases {
		t.Run(tt.name, func(t *testing.T) {
			th := newClusterHub(t)
			s := openSSE(t, th, "", http.Header{"Last-Event-Id": {tt.from}})
			want := fmt.Sprintf(`{"oldest":%q}`, clusterID(th, 6))
			if !tt.since.IsZero() {
				want = fmt.Sprintf(`{"oldest":%q,"since":%q}`, clusterID(th, 6), bridge.FormatTime(tt.since))
			}
			if ev := s.nextEvent(); ev.event != "reset" || ev.hasID || ev.data != want {
				t.Fatalf("got %+v, want reset without id, data %s", ev, want)
			}
			for _, id := range tt.replayed {
				if ev := s.nextEvent(); ev.id != clusterID(th, id) || ev.event != "telemetry" {
					t.Fatalf("got %+v, want event %d", ev, id)
				}
			}
			rec := commit(th.Hub, th.log, "telemetry/d1/temp")[0]
			if ev := s.nextEvent(); ev.id != clusterID(th, rec.ID) {
				t.Fatalf("first live event %+v, want %d", ev, rec.ID)
			}
		})
	}
}

func TestWSResumeFromPeer(t *testing.T) {
	for _, tt := range peerResumeCases {
		t.Run(tt.name, func(t *testing.T) {
			th := newClusterHub(t)
			c := dialWS(t, th, nil)
			c.subscribe(tt.from, "telemetry/#")
			m := c.next()
			if m.Op != "reset" || m.Oldest == nil || *m.Oldest != clusterID(th, 6) {
				t.Fatalf("got %+v, want reset naming the oldest event 6", m)
			}
			if wantSince := bridge.FormatTime(tt.since); tt.since.IsZero() && m.Since != "" || !tt.since.IsZero() && m.Since != wantSince {
				t.Fatalf("reset since %q, want %q", m.Since, wantSince)
			}
			for _, id := range tt.replayed {
				if m := c.next(); m.Op != "event" || m.ID != clusterID(th, id) {
					t.Fatalf("got %+v, want event %d", m, id)
				}
			}
			rec := commit(th.Hub, th.log, "telemetry/d1/temp")[0]
			if m := c.next(); m.Op != "event" || m.ID != clusterID(th, rec.ID) {
				t.Fatalf("first live event %+v, want %d", m, rec.ID)
			}
		})
	}
}

// A hub in a cluster resumes from its own ids, with or without their time,
// as a single hub does.
func TestClusterResumeOwnID(t *testing.T) {
	th := newClusterHub(t)
	for _, from := range []string{clusterID(th, 17), th.log.ids.Format(17)} {
		s := openSSE(t, th, "", http.Header{"Last-Event-Id": {from}})
		for _, id := range idSeq(18, 20) {
			if ev := s.nextEvent(); ev.id != clusterID(th, id) {
				t.Fatalf("resume from %q: got %+v, want event %d", from, ev, id)
			}
		}
		s.close()
	}
}

// A peer's id whose replay point retention trims before the replay reads
// it gets the reset with since and the replay from the oldest event.
func TestPeerResumeTrimmedMeanwhile(t *testing.T) {
	th := newClusterHub(t)
	w := &writer{h: th.Hub, w: &watcher{format: formatSSE}}
	after := w.addReset(8, 20, fakeTime(9))
	if after != 8 {
		t.Fatalf("addReset after 8 = %d, want 8", after)
	}
	th.log.trim(10)
	if after := w.addReset(8, 20, fakeTime(9)); after != 10 {
		t.Fatalf("addReset after 8 with 10 trimmed = %d, want 10", after)
	}
}

func TestEncodeClusterIDs(t *testing.T) {
	ids := storage.NewIDCodec("a1b2c3").InCluster(time.Second)
	rec := &storage.Record{ID: 7, Kind: bridge.KindTelemetry, Topic: "t", Time: fakeTime(7), Data: []byte(`{"v":1}`)}
	id := ids.FormatAt(7, fakeTime(7))
	sse := appendSSEEvent(nil, ids, rec)
	if len(sse) != sseEventLen(ids, rec) || string(sse) != "id: "+id+"\nevent: telemetry\ndata: {\"v\":1}\n\n" {
		t.Errorf("SSE event %q (computed length %d)", sse, sseEventLen(ids, rec))
	}
	ws := appendWSEvent(nil, ids, rec)
	if len(ws) != wsEventLen(ids, rec) {
		t.Errorf("WS length %d, computed %d", len(ws), wsEventLen(ids, rec))
	}
	if want := `{"op":"event","id":"` + id + `","event":"telemetry","data":{"v":1}}`; string(parseServerFrame(t, ws)) != want {
		t.Errorf("WS event %s, want %s", parseServerFrame(t, ws), want)
	}
}
