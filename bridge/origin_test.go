package bridge

import (
	"errors"
	"testing"
	"time"
)

func last(s *fakeStore) *Write {
	all := s.all()
	return all[len(all)-1]
}

func TestAppendOrigin(t *testing.T) {
	cases := []struct{ data, want string }{
		{`{"v":1}`, `{"origin":"n1:id-1","v":1}`},
		{`{}`, `{"origin":"n1:id-1"}`},
		{`{"origin":"n2:x","v":1}`, `{"origin":"n2:x","v":1}`}, // a peer's: kept
		{``, ``},
		{`[1]`, `[1]`},
	}
	for _, c := range cases {
		if got := string(AppendOrigin(nil, []byte(c.data), "n1", "id-1")); got != c.want {
			t.Errorf("AppendOrigin(%s) = %s, want %s", c.data, got, c.want)
		}
	}
}

// A peer's reading carries its origin in every event and is never refused
// for the rate; a local one gets the forwarder's message.
func TestTelemetryOriginAndForward(t *testing.T) {
	st := &fakeStore{}
	clk := &clock{t: fixedNow}
	b, err := New(Config{Store: st, DeviceRate: 1, DeviceBurst: 1, Forward: fakeForwarder{}, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	p := Payload{Readings: []Reading{{Metric: "a", Value: NumberValue(1)}, {Metric: "b", Value: NumberValue(2)}}}
	o := &Origin{Node: "n2", ID: 7, EventIDs: []string{"x-7", "x-8"}}
	for range 3 { // over the rate of 1: a peer's is never refused
		if err := b.Telemetry(Input{Device: "d1", Transport: TransportWS, Origin: o}, p, nil); err != nil {
			t.Fatal(err)
		}
	}
	w := last(st)
	if w.Origin != o || w.Outbox != nil || !HasOrigin(w.Events[1].Data) ||
		string(w.Events[1].Data[:len(`{"origin":"n2:x-8"`)]) != `{"origin":"n2:x-8"` {
		t.Fatalf("peer write %+v, data %s", w, w.Events[1].Data)
	}
	bad := &Origin{Node: "n2", ID: 9, EventIDs: []string{"x-9"}}
	if err := b.Telemetry(Input{Device: "d1", Origin: bad}, p, nil); !errors.Is(err, ErrBadOrigin) {
		t.Fatalf("one id for two events: %v, want ErrBadOrigin", err)
	}
	if err := b.Telemetry(Input{Device: "d2", Transport: TransportWS, Paced: true}, p, nil); err != nil {
		t.Fatal(err)
	}
	if w := last(st); string(w.Outbox) != "t:d2" || w.Origin != nil || HasOrigin(w.Events[0].Data) {
		t.Fatalf("local write %+v", w)
	}
	if err := b.PeerPresence("d3", Presence{Online: true, Transport: TransportWS, Reason: ReasonConnect}, clk.now(), &Origin{Node: "n2", ID: 3, EventIDs: []string{"x-3"}}, nil); err != nil {
		t.Fatal(err)
	}
	if w := last(st); w.Outbox != nil || !HasOrigin(w.Events[0].Data) || w.Presence == nil {
		t.Fatalf("peer presence %+v", w)
	}
	if err := b.Presence("d3", Presence{Online: false, Transport: TransportWS, Reason: ReasonDisconnect}, clk.now(), nil); err != nil {
		t.Fatal(err)
	}
	if w := last(st); string(w.Outbox) != "p:d3" || HasOrigin(w.Events[0].Data) {
		t.Fatalf("local presence %+v", w)
	}
}

type fakeForwarder struct{}

func (fakeForwarder) Telemetry(in *Input, _ *Payload) []byte { return []byte("t:" + in.Device) }
func (fakeForwarder) Presence(device string, _ *Presence, _ time.Time) []byte {
	return []byte("p:" + device)
}
