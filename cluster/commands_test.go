package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/commands"
	"github.com/telehub/telehub/storage"
)

// testCommand is a command that hub 0123456789ab created for d1.
func testCommand(state bridge.CommandState) bridge.Command {
	return bridge.Command{ID: "0123456789ab-0000000000000003", Device: "d1", Name: "reboot",
		Params: json.RawMessage(`{"s":5}`), State: state, Created: t0, Expires: t0.Add(time.Hour), Updated: t0.Add(time.Second)}
}

// A change of a command in the outbox is published on the commands topic
// of this node and device, as the command object.
func TestForwardCommand(t *testing.T) {
	c, st, br, _, _ := newTestCluster(t)
	cmd := testCommand(bridge.CommandDelivered)
	st.add(storage.OutboxEntry{ID: 5, Committed: t0.Add(2 * time.Second), Time: t0.Add(time.Second), Body: CommandBody(&cmd)})
	startCluster(t, c)
	c.Connected()
	waitFor(t, "the outbox forwarded", func() bool { return st.left() == 0 })
	msgs := br.all()
	m := msgs[len(msgs)-1]
	if m.topic != "telehub/c1/commands/n1/d1" || m.retained {
		t.Fatalf("command change published as %+v", m)
	}
	got, err := parseMessage(levelCommands, []byte(m.payload))
	if err != nil || got.ID != 5 || len(got.IDs) != 1 || got.Seen != cmd.Updated.UnixMilli() {
		t.Fatalf("command message %+v, %v", got, err)
	}
	back, err := commands.DecodePeer("d1", got.Command)
	if err != nil || back.ID != cmd.ID || back.State != bridge.CommandDelivered || string(back.Params) != `{"s":5}` {
		t.Fatalf("command %+v, %v", back, err)
	}
}

// fakeCommands records the peers' commands it is given and answers each
// with err.
type fakeCommands struct {
	mu   sync.Mutex
	got  []bridge.Command
	err  error // of the write
	fail error // of ApplyPeer itself
}

func (f *fakeCommands) ApplyPeer(c bridge.Command, done func(error)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.got = append(f.got, c)
	done(f.err)
	return nil
}

func (f *fakeCommands) set(err, fail error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err, f.fail = err, fail
}

func (f *fakeCommands) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.got)
}

func commandMsg(cmd bridge.Command) string {
	return fmt.Sprintf(`{"id":9,"ids":["x-9"],"committed":%d,"seen":%d,"command":%s}`,
		t0.UnixMilli(), t0.UnixMilli(), commands.EncodePeer(&cmd))
}

// Peers' command changes go to the commands service; one that can never
// be applied is acknowledged without being stored, one that failed to be
// stored is left unacknowledged.
func TestIngestCommands(t *testing.T) {
	c, _, br, bb, loc := newTestCluster(t)
	fc := &fakeCommands{}
	c.Attach(Links{Bridge: bb, Broker: br, Local: loc, Commands: fc})
	good := commandMsg(testCommand(bridge.CommandSent))
	cases := []struct {
		name, topic, payload string
		err, fail            error
		applied              bool
		unacked              bool
	}{
		{"a peer's change", "telehub/c1/commands/n2/d1", good, nil, nil, true, false},
		{"our own, back", "telehub/c1/commands/n1/d1", good, nil, nil, false, false},
		{"another device's topic", "telehub/c1/commands/n2/d2", good, nil, nil, false, false},
		{"no command", "telehub/c1/commands/n2/d1", peerPresenceMsg(3, true, "connect"), nil, nil, false, false},
		{"a bad command", "telehub/c1/commands/n2/d1", `{"id":9,"ids":["x-9"],"committed":1,"seen":1,"command":{"id":"x"}}`, nil, nil, false, false},
		{"refused by the store's rules", "telehub/c1/commands/n2/d1", good, storage.ErrCommandNotFound, nil, true, false},
		{"a bad device for the service", "telehub/c1/commands/n2/d1", good, nil, commands.ErrInvalid, false, false},
		{"not stored", "telehub/c1/commands/n2/d1", good, storage.ErrClosed, nil, true, true},
		{"not submitted", "telehub/c1/commands/n2/d1", good, nil, storage.ErrClosed, false, true},
	}
	for _, cs := range cases {
		t.Run(cs.name, func(t *testing.T) {
			fc.set(cs.err, cs.fail)
			before := fc.count()
			var r results
			if !c.Message(cs.topic, []byte(cs.payload), r.done) {
				t.Fatal("not taken as the cluster's")
			}
			if applied := fc.count() > before; applied != cs.applied {
				t.Fatalf("applied %v, want %v", applied, cs.applied)
			}
			got := r.all()
			if len(got) != 1 || (got[0].Err != nil) != cs.unacked {
				t.Fatalf("done %+v, want one, unacknowledged %v", got, cs.unacked)
			}
		})
	}
	t.Run("no commands service", func(t *testing.T) {
		c2, _, br2, bb2, loc2 := newTestCluster(t)
		c2.Attach(Links{Bridge: bb2, Broker: br2, Local: loc2})
		var r results
		c2.Message("telehub/c1/commands/n2/d1", []byte(good), r.done)
		if got := r.all(); len(got) != 1 || got[0].Err != nil {
			t.Fatalf("done %+v, want acknowledged", got)
		}
	})
}

// relay is a broker between the hubs of a test: a publish is delivered to
// every hub's Message at once, acknowledged when each has stored it.
type relay struct {
	mu   sync.Mutex
	hubs []*Cluster
}

func (r *relay) Connected() bool { return true }

func (r *relay) PublishPeers(topic string, _ bool, payload []byte) paho.Token {
	r.mu.Lock()
	hubs := slices.Clone(r.hubs)
	r.mu.Unlock()
	tok := &fakeToken{done: make(chan struct{})}
	var wg sync.WaitGroup
	var errs []error
	var mu sync.Mutex
	for _, h := range hubs {
		wg.Add(1)
		h.Message(topic, payload, func(res bridge.Result) {
			mu.Lock()
			errs = append(errs, res.Err)
			mu.Unlock()
			wg.Done()
		})
	}
	go func() { // owned by the token: ends once every hub answered
		wg.Wait()
		tok.err = errors.Join(errs...)
		close(tok.done)
	}()
	return tok
}

// transport is a device connection of a test hub: it records the commands
// sent to its devices.
type transport struct {
	mu     sync.Mutex
	online map[string]bool
	sent   []string
}

func (t *transport) Reachable(dev string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.online[dev]
}

func (t *transport) SendCommand(dev string, c *bridge.Command) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sent = append(t.sent, c.ID)
	return t.online[dev]
}

func (t *transport) sentIDs() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.sent)
}

// testHub is a store, a commands service and a cluster node.
type testHub struct {
	store *storage.Store
	cmds  *commands.Service
	tr    *transport
}

func newTestHub(t *testing.T, node string, r *relay) *testHub {
	t.Helper()
	h := &testHub{tr: &transport{online: map[string]bool{}}}
	var c *Cluster // set before the first commit
	var err error
	h.store, err = storage.Open(storage.Config{Path: filepath.Join(t.TempDir(), "telehub.db"), NoFsync: true,
		Cluster: true, ForwardCommand: CommandBody, OnCommit: func([]storage.Record) { c.Wake() },
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.store.Close() })
	if c, err = New(Config{Name: "c1", Node: node, Store: h.store, Retry: time.Millisecond, PublishTimeout: guard}); err != nil {
		t.Fatal(err)
	}
	if h.cmds, err = commands.New(commands.Config{Store: h.store}); err != nil {
		t.Fatal(err)
	}
	h.cmds.Attach(h.tr)
	h.cmds.Start()
	t.Cleanup(func() { _ = h.cmds.Shutdown(context.Background()) })
	c.Attach(Links{Bridge: &fakeBridge{}, Broker: r, Local: fakeLocal{}, Commands: h.cmds})
	r.mu.Lock()
	r.hubs = append(r.hubs, c)
	r.mu.Unlock()
	startCluster(t, c)
	c.Connected()
	return h
}

// waitState polls h's copy of command id until it is in state want.
func (h *testHub) waitState(t *testing.T, id string, want bridge.CommandState) bridge.Command {
	t.Helper()
	var c bridge.Command
	waitFor(t, fmt.Sprintf("command %s %s", id, want), func() bool {
		var err error
		c, err = h.store.Command(id)
		return err == nil && c.State == want
	})
	return c
}

// A command created on hub B for a device connected to hub A: B stores
// and forwards it, A delivers it and forwards each change, B follows them
// up to the result, and a hub C sees the same states; no state goes back.
func TestCommandAcrossHubs(t *testing.T) {
	r := &relay{}
	a, b, c := newTestHub(t, "a", r), newTestHub(t, "b", r), newTestHub(t, "c", r)
	a.tr.online["d1"] = true
	cmd, err := b.cmds.Create(context.Background(), "d1", commands.Request{Name: "reboot", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the command delivered through hub A", func() bool { return slices.Equal(a.tr.sentIDs(), []string{cmd.ID}) })
	if sent := b.tr.sentIDs(); len(sent) != 0 {
		t.Fatalf("hub B sent %v to a device it does not reach", sent)
	}
	b.waitState(t, cmd.ID, bridge.CommandSent)
	if err := a.cmds.Answer("d1", bridge.CommandAnswer{ID: cmd.ID}); err != nil {
		t.Fatal(err)
	}
	b.waitState(t, cmd.ID, bridge.CommandDelivered)
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	waited := make(chan bridge.Command, 1)
	go func() {
		got, _ := b.cmds.Wait(ctx, cmd.ID)
		waited <- got
	}()
	answer := bridge.CommandAnswer{ID: cmd.ID, IsResult: true, Status: bridge.StatusOK, Result: json.RawMessage(`{"up":1}`)}
	if err := a.cmds.Answer("d1", answer); err != nil {
		t.Fatal(err)
	}
	if got := <-waited; got.State != bridge.CommandSucceeded || string(got.Result) != `{"up":1}` {
		t.Fatalf("Wait on hub B = %+v, want succeeded with the result", got)
	}
	for name, h := range map[string]*testHub{"A": a, "B": b, "C": c} {
		got := h.waitState(t, cmd.ID, bridge.CommandSucceeded)
		if string(got.Result) != `{"up":1}` {
			t.Errorf("hub %s: %+v", name, got)
		}
		// A hub may get one peer's change before another's: it skips
		// what it got later, never going back.
		if states := commandStates(t, h.store); !inLifecycleOrder(states) || states[len(states)-1] != "succeeded" {
			t.Errorf("hub %s: command events %v, want queued, sent, delivered, succeeded or a part, in order", name, states)
		}
	}
}

// commandStates returns the states of the command events of s, in order.
func commandStates(t *testing.T, s *storage.Store) []string {
	t.Helper()
	recs, _, err := storage.ReadAfter(s, 0, s.LastID(), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rec := range recs {
		var c bridge.Command
		if err := json.Unmarshal(rec.Data, &c); err != nil {
			t.Fatalf("event %s: %v", rec.Data, err)
		}
		out = append(out, string(c.State))
	}
	return out
}

// inLifecycleOrder reports whether states follow queued, sent, delivered,
// succeeded, each at most once.
func inLifecycleOrder(states []string) bool {
	order := []string{"queued", "sent", "delivered", "succeeded"}
	next := 0
	for _, s := range states {
		i := slices.Index(order[next:], s)
		if i < 0 {
			return false
		}
		next += i + 1
	}
	return len(states) > 0
}

func TestParseCommandMessage(t *testing.T) {
	good := commandMsg(testCommand(bridge.CommandSent))
	if _, err := parseMessage(levelCommands, []byte(good)); err != nil {
		t.Fatalf("a command message: %v", err)
	}
	for _, bad := range []string{
		`{"id":9,"ids":["x-9"],"committed":1,"seen":1}`,
		`{"id":9,"ids":["x-9"],"committed":1,"seen":1,"command":{},"frame":{}}`,
		`{"id":9,"ids":["x-9","x-10"],"committed":1,"seen":1,"command":{}}`,
		peerPresenceMsg(3, true, "connect"),
	} {
		if _, err := parseMessage(levelCommands, []byte(bad)); !errors.Is(err, errBadMessage) {
			t.Errorf("parseMessage(%s) = %v, want errBadMessage", bad, err)
		}
	}
	if _, err := parseMessage(levelWS, []byte(good)); !errors.Is(err, errBadMessage) {
		t.Errorf("a command on the readings topic: %v, want errBadMessage", err)
	}
}
