package commands

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/storage"
)

// newClusterRig is a rig whose store is a hub's of a cluster.
func newClusterRig(t *testing.T) *rig {
	t.Helper()
	path := filepath.Join(t.TempDir(), "telehub.db")
	clock := &fakeClock{now: t0}
	st, err := storage.Open(storage.Config{Path: path, NoFsync: true, Cluster: true,
		Logger: slog.New(slog.DiscardHandler), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{Store: st, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{store: st, svc: svc, clock: clock, tr: &fakeTransport{online: map[string]bool{}}, path: path}
	svc.Attach(r.tr)
	svc.Start()
	t.Cleanup(r.close)
	return r
}

// peerCommand is a command that the peer hub 0123456789ab created for dev.
func peerCommand(dev string, state bridge.CommandState) bridge.Command {
	return bridge.Command{ID: "0123456789ab-0000000000000003", Device: dev, Name: "reboot",
		State: state, Created: t0, Expires: t0.Add(time.Hour), Updated: t0}
}

// applyPeer applies a peer's copy of c and waits for its commit.
func applyPeer(t *testing.T, r *rig, c bridge.Command) error {
	t.Helper()
	res := make(chan error, 1)
	if err := r.svc.ApplyPeer(c, func(err error) { res <- err }); err != nil {
		t.Fatalf("ApplyPeer: %v", err)
	}
	select {
	case err := <-res:
		return err
	case <-time.After(guard):
		t.Fatal("ApplyPeer's done was not called")
		return nil
	}
}

// A command created on a peer for a device connected to this hub is
// delivered here; the confirmation is this hub's change, and the peer's
// final state ends the waits here.
func TestPeerCommandDeliveredHere(t *testing.T) {
	r := newClusterRig(t)
	r.tr.setOnline("d1", true)
	c := peerCommand("d1", bridge.CommandQueued)
	if err := applyPeer(t, r, c); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the command sent to d1", func() bool { return slices.Equal(r.tr.sentIDs(), []string{c.ID}) })
	r.waitState(t, c.ID, bridge.CommandSent)
	if err := r.svc.Answer("d1", bridge.CommandAnswer{ID: c.ID}); err != nil {
		t.Fatal(err)
	}
	r.waitState(t, c.ID, bridge.CommandDelivered)

	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	done := make(chan bridge.Command, 1)
	go func() {
		got, _ := r.svc.Wait(ctx, c.ID)
		done <- got
	}()
	waitFor(t, "the waiter", func() bool { r.svc.mu.Lock(); defer r.svc.mu.Unlock(); return len(r.svc.waiters) == 1 })
	final := c
	final.State, final.Status, final.Result = bridge.CommandSucceeded, bridge.StatusOK, json.RawMessage(`{"ok":1}`)
	if err := applyPeer(t, r, final); err != nil {
		t.Fatal(err)
	}
	if got := <-done; got.State != bridge.CommandSucceeded || string(got.Result) != `{"ok":1}` {
		t.Fatalf("Wait = %+v, want succeeded with the result", got)
	}
	// The expiry of the command, forgotten here, changes nothing.
	r.clock.Advance(2 * time.Hour)
	if got, err := r.store.Command(c.ID); err != nil || got.State != bridge.CommandSucceeded {
		t.Fatalf("after its ttl: %+v, %v", got, err)
	}
}

// A peer's command for a device not connected here waits for the device;
// the peer's changes move it here too, and a stale one changes nothing.
func TestPeerCommandFollowed(t *testing.T) {
	r := newClusterRig(t)
	c := peerCommand("d1", bridge.CommandSent)
	if err := applyPeer(t, r, c); err != nil {
		t.Fatal(err)
	}
	delivered := c
	delivered.State = bridge.CommandDelivered
	if err := applyPeer(t, r, delivered); err != nil {
		t.Fatal(err)
	}
	if err := applyPeer(t, r, c); err != nil { // sent again: stale
		t.Fatal(err)
	}
	r.waitState(t, c.ID, bridge.CommandDelivered)
	// Connected here, the device is not sent a command it confirmed.
	r.tr.setOnline("d1", true)
	r.svc.Connected("d1")
	if sent := r.tr.sentIDs(); len(sent) != 0 {
		t.Fatalf("sent %v, want nothing", sent)
	}
	if _, err := r.svc.Cancel(context.Background(), c.ID); !errors.Is(err, storage.ErrCommandState) {
		t.Fatalf("Cancel of a delivered command: %v, want ErrCommandState", err)
	}
}

// A peer's command can be canceled here before it was delivered; the
// cancel is this hub's change.
func TestPeerCommandCanceledHere(t *testing.T) {
	r := newClusterRig(t)
	c := peerCommand("d1", bridge.CommandQueued)
	if err := applyPeer(t, r, c); err != nil {
		t.Fatal(err)
	}
	got, err := r.svc.Cancel(context.Background(), c.ID)
	if err != nil || got.State != bridge.CommandCanceled {
		t.Fatalf("Cancel = %+v, %v", got, err)
	}
	// The peer's later "sent" changes nothing: a state never goes back.
	sent := c
	sent.State = bridge.CommandSent
	if err := applyPeer(t, r, sent); err != nil {
		t.Fatal(err)
	}
	r.waitState(t, c.ID, bridge.CommandCanceled)
}

func TestApplyPeerRefusals(t *testing.T) {
	r := newClusterRig(t)
	if err := r.svc.ApplyPeer(peerCommand("bad/id", bridge.CommandQueued), nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a bad device id: %v, want ErrInvalid", err)
	}
	bare := peerCommand("d1", bridge.CommandQueued)
	bare.ID = "0000000000000003"
	if err := applyPeer(t, r, bare); !errors.Is(err, storage.ErrCommandNotFound) {
		t.Fatalf("a single hub's id: %v, want ErrCommandNotFound", err)
	}
	r.close()
	if err := r.svc.ApplyPeer(peerCommand("d1", bridge.CommandQueued), nil); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
}
