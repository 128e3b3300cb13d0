package storage

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/telehub/telehub/bridge"
)

// peerCmdID is the id of a command that the peer hub 0123456789ab created.
const peerCmdID = "0123456789ab-0000000000000007"

// peerCmd returns a peer's command of d1 in state.
func peerCmd(state bridge.CommandState) bridge.Command {
	return bridge.Command{ID: peerCmdID, Device: "d1", Name: "reboot", Params: json.RawMessage(`{"n":1}`),
		State: state, Created: t0, Expires: t0.Add(time.Hour), Updated: t0}
}

// replicate applies a peer's copy of c and returns the op.
func replicate(t *testing.T, s *Store, c bridge.Command) (*bridge.CommandOp, error) {
	t.Helper()
	op := &bridge.CommandOp{Replica: &c}
	r := wait(t, submitAsync(t, s, &bridge.Write{Device: c.Device, Command: op}))
	return op, r.Err
}

func clusterStore(t *testing.T) (*Store, Config) {
	t.Helper()
	cfg := testConfig(t)
	cfg.Cluster = true
	return openStore(t, cfg), cfg
}

func TestClusterCommandIDs(t *testing.T) {
	s, _ := clusterStore(t)
	c, err := createCmd(t, s, "d1", "reboot", 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := s.IDs().Identity() + "-0000000000000001"; c.ID != want {
		t.Fatalf("command id %q, want %q", c.ID, want)
	}
	if _, err := moveCmd(t, s, "d1", c.ID, bridge.CommandSent, false); err != nil {
		t.Fatal(err)
	}
	got, err := s.Command(c.ID)
	if err != nil || got.State != bridge.CommandSent {
		t.Fatalf("Command(%q) = %+v, %v", c.ID, got, err)
	}
	single := openStore(t, testConfig(t))
	if c, err := createCmd(t, single, "d1", "reboot", 0); err != nil || c.ID != "0000000000000001" {
		t.Fatalf("a single hub's command id %q, %v; want 0000000000000001", c.ID, err)
	}
}

func TestReplicaOfAPeersCommand(t *testing.T) {
	s, cfg := clusterStore(t)
	steps := []struct {
		state   bridge.CommandState
		changed bool
	}{
		{bridge.CommandQueued, true},
		{bridge.CommandQueued, false}, // repeated
		{bridge.CommandDelivered, true},
		{bridge.CommandSent, false}, // stale: never back
		{bridge.CommandSucceeded, true},
		{bridge.CommandExpired, false},
	}
	for _, st := range steps {
		c := peerCmd(st.state)
		if st.state == bridge.CommandSucceeded {
			c.Status, c.Result, c.Updated = bridge.StatusOK, json.RawMessage(`{"x":2}`), t0.Add(time.Second)
		}
		op, err := replicate(t, s, c)
		if err != nil || op.Changed != st.changed {
			t.Fatalf("replica in %s: changed %v, %v; want changed %v", st.state, op.Changed, err, st.changed)
		}
	}
	got, err := s.Command(peerCmdID)
	if err != nil || got.State != bridge.CommandSucceeded || string(got.Result) != `{"x":2}` || !got.Updated.Equal(t0.Add(time.Second)) {
		t.Fatalf("Command = %+v, %v", got, err)
	}
	var states []string
	for _, rec := range scanAll(t, s) {
		var ev bridge.Command
		if err := json.Unmarshal(rec.Data, &ev); err != nil || rec.Topic != "commands/d1" || ev.ID != peerCmdID {
			t.Fatalf("event %s %s: %v", rec.Topic, rec.Data, err)
		}
		states = append(states, string(ev.State))
	}
	if strings.Join(states, ",") != "queued,delivered,succeeded" {
		t.Fatalf("events of states %v, want queued, delivered, succeeded", states)
	}
	if pending, err := s.PendingCommands(); err != nil || len(pending) != 0 {
		t.Fatalf("pending %v, %v; want none", pending, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	again := openStore(t, cfg)
	list, err := again.DeviceCommands("d1", "", 10)
	if err != nil || len(list) != 1 || list[0].ID != peerCmdID || list[0].State != bridge.CommandSucceeded {
		t.Fatalf("after reopen: %+v, %v", list, err)
	}
}

// A peer's command not final is pending here too, so that this hub can
// deliver it when the device is connected here; the peer's changes of this
// hub's own commands move them forward.
func TestReplicaPendingAndOwnCommands(t *testing.T) {
	s, _ := clusterStore(t)
	if _, err := replicate(t, s, peerCmd(bridge.CommandQueued)); err != nil {
		t.Fatal(err)
	}
	own, err := createCmd(t, s, "d1", "blink", 0)
	if err != nil {
		t.Fatal(err)
	}
	pending, err := s.PendingCommands()
	if err != nil || len(pending) != 2 || pending[0].ID != peerCmdID || pending[1].ID != own.ID {
		t.Fatalf("pending %+v, %v; want the peer's command then the own one", pending, err)
	}
	back := own
	back.State, back.Status, back.Message = bridge.CommandFailed, bridge.StatusError, "no"
	if op, err := replicate(t, s, back); err != nil || !op.Changed || op.Out.State != bridge.CommandFailed {
		t.Fatalf("a peer's change of an own command: %+v, %v", op.Out, err)
	}
	// A result a peer saw after the command expired here is recorded; the
	// state stays expired.
	if _, err := moveCmd(t, s, "d1", peerCmdID, bridge.CommandExpired, false); err != nil {
		t.Fatal(err)
	}
	late := peerCmd(bridge.CommandSucceeded)
	late.Status, late.Result = bridge.StatusOK, json.RawMessage(`{"late":true}`)
	if op, err := replicate(t, s, late); err != nil || op.Changed || op.Out.State != bridge.CommandExpired || op.Out.Status != bridge.StatusOK {
		t.Fatalf("a late result: %+v changed %v, %v", op.Out, op.Changed, err)
	}
}

func TestReplicaRefusals(t *testing.T) {
	s, _ := clusterStore(t)
	own := s.IDs().Identity() + "-0000000000000009"
	tests := []struct {
		name string
		mod  func(c *bridge.Command) string // returns the write's device
		want error
	}{
		{"another device's write", func(c *bridge.Command) string { return "d2" }, ErrCommandDevice},
		{"an unknown state", func(c *bridge.Command) string { c.State = "lost"; return c.Device }, ErrCommandState},
		{"a single hub's id", func(c *bridge.Command) string { c.ID = "0000000000000042"; return c.Device }, ErrCommandNotFound},
		{"an own id this store never minted", func(c *bridge.Command) string { c.ID = own; return c.Device }, ErrCommandNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := peerCmd(bridge.CommandQueued)
			dev := tt.mod(&c)
			op := &bridge.CommandOp{Replica: &c}
			r := wait(t, submitAsync(t, s, &bridge.Write{Device: dev, Command: op}))
			if !errors.Is(r.Err, tt.want) || op.Changed {
				t.Fatalf("err %v changed %v, want %v", r.Err, op.Changed, tt.want)
			}
		})
	}
	if _, err := replicate(t, s, peerCmd(bridge.CommandQueued)); err != nil {
		t.Fatal(err)
	}
	moved := peerCmd(bridge.CommandSent)
	moved.Device = "d2"
	op := &bridge.CommandOp{Replica: &moved}
	if r := wait(t, submitAsync(t, s, &bridge.Write{Device: "d2", Command: op})); !errors.Is(r.Err, ErrCommandDevice) {
		t.Fatalf("a replica naming another device for a stored command: %v", r.Err)
	}
}

// In a cluster, each change of a command this hub makes is kept in the
// outbox under its event's id; a change applied from a peer's copy is not
// forwarded again.
func TestCommandChangesForwarded(t *testing.T) {
	cfg := testConfig(t)
	cfg.Cluster = true
	cfg.ForwardCommand = func(c *bridge.Command) []byte { return []byte(c.ID + " " + string(c.State)) }
	s := openStore(t, cfg)
	own, err := createCmd(t, s, "d1", "reboot", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := moveCmd(t, s, "d1", own.ID, bridge.CommandSent, false); err != nil {
		t.Fatal(err)
	}
	if _, err := replicate(t, s, peerCmd(bridge.CommandQueued)); err != nil {
		t.Fatal(err)
	}
	back := own
	back.State = bridge.CommandDelivered
	if _, err := replicate(t, s, back); err != nil {
		t.Fatal(err)
	}
	if _, err := moveCmd(t, s, "d1", own.ID, bridge.CommandSent, false); !errors.Is(err, ErrCommandState) {
		t.Fatalf("a refused change: %v", err)
	}
	out, err := s.Outbox(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range out {
		got = append(got, string(e.Body))
	}
	want := []string{own.ID + " queued", own.ID + " sent"}
	if strings.Join(got, "|") != strings.Join(want, "|") || out[0].ID != 1 || out[1].ID != 2 {
		t.Fatalf("outbox %v (ids %d, %d), want %v under events 1 and 2", got, out[0].ID, out[1].ID, want)
	}
}
