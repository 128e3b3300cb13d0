package storage

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/telehub/telehub/bridge"
)

// createCmd stores a new command of device and returns it.
func createCmd(t *testing.T, s *Store, device, name string, maxPending int) (bridge.Command, error) {
	t.Helper()
	op := &bridge.CommandOp{Create: &bridge.Command{Name: name, Params: json.RawMessage(`{"n":1}`),
		Expires: t0.Add(time.Hour)}, MaxPending: maxPending}
	r := wait(t, submitAsync(t, s, &bridge.Write{Device: device, Command: op}))
	return op.Out, r.Err
}

// moveCmd changes the command id of device to state to.
func moveCmd(t *testing.T, s *Store, device, id string, to bridge.CommandState, result bool) (*bridge.CommandOp, error) {
	t.Helper()
	op := &bridge.CommandOp{ID: id, To: to}
	if result {
		op.HasResult, op.Status, op.Result, op.Message = true, bridge.StatusOK, json.RawMessage(`{"x":2}`), "done"
	}
	r := wait(t, submitAsync(t, s, &bridge.Write{Device: device, Command: op}))
	return op, r.Err
}

func TestCommandLifecycleIsStoredWithItsEvents(t *testing.T) {
	s := openStore(t, testConfig(t))
	c, err := createCmd(t, s, "d1", "reboot", 0)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID == "" || c.State != bridge.CommandQueued || !c.Created.Equal(t0) {
		t.Fatalf("created %+v", c)
	}
	for _, to := range []bridge.CommandState{bridge.CommandSent, bridge.CommandDelivered, bridge.CommandSucceeded} {
		if _, err := moveCmd(t, s, "d1", c.ID, to, to == bridge.CommandSucceeded); err != nil {
			t.Fatalf("to %s: %v", to, err)
		}
	}
	got, err := s.Command(c.ID)
	if err != nil || got.State != bridge.CommandSucceeded || string(got.Result) != `{"x":2}` || got.Message != "done" {
		t.Fatalf("Command = %+v, %v", got, err)
	}
	recs := scanAll(t, s)
	if len(recs) != 4 {
		t.Fatalf("%d events, want 4 (one per state)", len(recs))
	}
	states := []bridge.CommandState{bridge.CommandQueued, bridge.CommandSent, bridge.CommandDelivered, bridge.CommandSucceeded}
	for i, rec := range recs {
		var ev bridge.Command
		if rec.Kind != bridge.KindCommand || rec.Topic != "commands/d1" {
			t.Fatalf("event %d: kind %v topic %s", i, rec.Kind, rec.Topic)
		}
		if err := json.Unmarshal(rec.Data, &ev); err != nil || ev.State != states[i] || ev.ID != c.ID {
			t.Fatalf("event %d data %s: %v", i, rec.Data, err)
		}
	}
	pending, err := s.PendingCommands()
	if err != nil || len(pending) != 0 {
		t.Fatalf("pending %v, %v: a final command is not pending", pending, err)
	}
}

func TestCommandStateNeverGoesBack(t *testing.T) {
	tests := []struct {
		path []bridge.CommandState // reached in order
		to   bridge.CommandState   // then refused
	}{
		{[]bridge.CommandState{bridge.CommandSent}, bridge.CommandQueued},
		{[]bridge.CommandState{bridge.CommandSent}, bridge.CommandSent},
		{[]bridge.CommandState{bridge.CommandDelivered}, bridge.CommandSent},
		{[]bridge.CommandState{bridge.CommandDelivered}, bridge.CommandCanceled},
		{[]bridge.CommandState{bridge.CommandSucceeded}, bridge.CommandFailed},
		{[]bridge.CommandState{bridge.CommandFailed}, bridge.CommandDelivered},
		{[]bridge.CommandState{bridge.CommandCanceled}, bridge.CommandSent},
		{[]bridge.CommandState{bridge.CommandExpired}, bridge.CommandDelivered},
		{[]bridge.CommandState{bridge.CommandCanceled}, bridge.CommandExpired},
	}
	s := openStore(t, testConfig(t))
	for _, tt := range tests {
		t.Run(string(tt.path[len(tt.path)-1])+"->"+string(tt.to), func(t *testing.T) {
			c, err := createCmd(t, s, "d1", "x", 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range tt.path {
				if _, err := moveCmd(t, s, "d1", c.ID, st, false); err != nil {
					t.Fatalf("to %s: %v", st, err)
				}
			}
			before := s.LastID()
			if _, err := moveCmd(t, s, "d1", c.ID, tt.to, false); !errors.Is(err, ErrCommandState) {
				t.Fatalf("to %s: err %v, want ErrCommandState", tt.to, err)
			}
			got, _ := s.Command(c.ID)
			if got.State != tt.path[len(tt.path)-1] || s.LastID() != before {
				t.Fatalf("state %s, last id %d→%d: a refused change must change nothing", got.State, before, s.LastID())
			}
		})
	}
}

func TestCommandRefusals(t *testing.T) {
	s := openStore(t, testConfig(t))
	c, _ := createCmd(t, s, "d1", "x", 0)
	if _, err := moveCmd(t, s, "d2", c.ID, bridge.CommandDelivered, false); !errors.Is(err, ErrCommandDevice) {
		t.Errorf("another device's command: %v, want ErrCommandDevice", err)
	}
	for _, id := range []string{"nope", "00000000000000ff", ""} {
		if _, err := moveCmd(t, s, "d1", id, bridge.CommandDelivered, false); !errors.Is(err, ErrCommandNotFound) {
			t.Errorf("id %q: %v, want ErrCommandNotFound", id, err)
		}
		if _, err := s.Command(id); !errors.Is(err, ErrCommandNotFound) {
			t.Errorf("Command(%q): %v, want ErrCommandNotFound", id, err)
		}
	}
}

func TestResultAfterExpiryIsRecordedWithoutChangingTheState(t *testing.T) {
	s := openStore(t, testConfig(t))
	c, _ := createCmd(t, s, "d1", "x", 0)
	if _, err := moveCmd(t, s, "d1", c.ID, bridge.CommandExpired, false); err != nil {
		t.Fatal(err)
	}
	before := s.LastID()
	op, err := moveCmd(t, s, "d1", c.ID, bridge.CommandSucceeded, true)
	if err != nil || op.Changed {
		t.Fatalf("late result: %v, changed %v; want recorded, state unchanged", err, op.Changed)
	}
	got, _ := s.Command(c.ID)
	if got.State != bridge.CommandExpired || got.Status != bridge.StatusOK || string(got.Result) != `{"x":2}` {
		t.Fatalf("command %+v: want expired with the result", got)
	}
	if s.LastID() != before {
		t.Fatal("a late result is not a state change: no event")
	}
}

func TestPendingCommandsAreBounded(t *testing.T) {
	s := openStore(t, testConfig(t))
	var first bridge.Command
	for i := range 3 {
		c, err := createCmd(t, s, "d1", "x", 3)
		if err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
		if i == 0 {
			first = c
		}
	}
	if _, err := createCmd(t, s, "d1", "x", 3); !errors.Is(err, ErrTooManyCommands) {
		t.Fatalf("fourth: %v, want ErrTooManyCommands", err)
	}
	if _, err := createCmd(t, s, "d2", "x", 3); err != nil {
		t.Fatalf("another device is not bounded by d1's: %v", err)
	}
	if _, err := moveCmd(t, s, "d1", first.ID, bridge.CommandCanceled, false); err != nil {
		t.Fatal(err)
	}
	if _, err := createCmd(t, s, "d1", "x", 3); err != nil {
		t.Fatalf("after a cancel there is room: %v", err)
	}
}

func TestCommandsSurviveReopenAndListNewestFirst(t *testing.T) {
	cfg := testConfig(t)
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 4 {
		c, err := createCmd(t, s, "d1", "x", 0)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	if _, err := createCmd(t, s, "d10", "x", 0); err != nil { // a device whose id extends d1's
		t.Fatal(err)
	}
	if _, err := moveCmd(t, s, "d1", ids[1], bridge.CommandSent, false); err != nil {
		t.Fatal(err)
	}
	if _, err := moveCmd(t, s, "d1", ids[2], bridge.CommandCanceled, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, cfg)
	pending, err := s.PendingCommands()
	if err != nil || len(pending) != 4 || pending[0].ID != ids[0] || pending[1].State != bridge.CommandSent {
		t.Fatalf("pending after reopen %+v, %v", pending, err)
	}
	all, err := s.DeviceCommands("d1", "", 10)
	if err != nil || len(all) != 4 || all[0].ID != ids[3] || all[3].ID != ids[0] {
		t.Fatalf("list %+v, %v: want d1's 4, newest first", all, err)
	}
	sent, _ := s.DeviceCommands("d1", bridge.CommandSent, 10)
	canceled, _ := s.DeviceCommands("d1", bridge.CommandCanceled, 10)
	two, _ := s.DeviceCommands("d1", "", 2)
	if len(sent) != 1 || sent[0].ID != ids[1] || len(canceled) != 1 || canceled[0].ID != ids[2] || len(two) != 2 {
		t.Fatalf("by state: sent %v canceled %v limit %d", sent, canceled, len(two))
	}
	if c, err := createCmd(t, s, "d1", "x", 0); err != nil || c.ID <= ids[3] {
		t.Fatalf("new id %q after reopen, last was %q: ids never repeat", c.ID, ids[3])
	}
}
