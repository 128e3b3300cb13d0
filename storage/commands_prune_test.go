package storage

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/telehub/telehub/bridge"
)

func TestFinishedCommandsArePrunedAfterTheRetention(t *testing.T) {
	clock := newFakeClock(t0)
	cfg := testConfig(t)
	cfg.Now, cfg.MaxAge, cfg.CommandRetention = clock.Now, 30*24*time.Hour, time.Hour
	cfg.TrimInterval = time.Millisecond // the idle writer looks often
	s := openStore(t, cfg)
	final := map[bridge.CommandState]string{}
	for _, st := range []bridge.CommandState{bridge.CommandSucceeded, bridge.CommandFailed, bridge.CommandExpired, bridge.CommandCanceled} {
		c, err := createCmd(t, s, "d1", "x", 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := moveCmd(t, s, "d1", c.ID, st, false); err != nil {
			t.Fatal(err)
		}
		final[st] = c.ID
	}
	pending, _ := createCmd(t, s, "d1", "x", 0)
	clock.Add(59 * time.Minute)
	late, _ := createCmd(t, s, "d2", "x", 0) // finished just before the retention passes for the others
	if _, err := moveCmd(t, s, "d2", late.ID, bridge.CommandCanceled, false); err != nil {
		t.Fatal(err)
	}
	events := len(scanAll(t, s))

	clock.Add(time.Minute + time.Millisecond)
	wait(t, submitAsync(t, s, reading("d3", clock.Now(), 1, "t")))
	for st, id := range final {
		if _, err := s.Command(id); !errors.Is(err, ErrCommandNotFound) {
			t.Errorf("%s command %s: %v, want pruned", st, id, err)
		}
	}
	if got, err := s.Command(pending.ID); err != nil || got.State != bridge.CommandQueued {
		t.Fatalf("pending command: %+v, %v; a command not final is never pruned", got, err)
	}
	if _, err := s.Command(late.ID); err != nil {
		t.Fatalf("a command finished within the retention: %v", err)
	}
	if list, _ := s.DeviceCommands("d1", "", 10); len(list) != 1 || list[0].ID != pending.ID {
		t.Fatalf("d1's list after pruning: %+v", list)
	}
	if got := len(scanAll(t, s)); got != events+1 {
		t.Fatalf("%d events, want %d: pruning commands keeps their events", got, events+1)
	}

	clock.Add(time.Hour) // the late one goes by the idle writer, without a write
	deadline := time.Now().Add(guard)
	for _, err := s.Command(late.ID); !errors.Is(err, ErrCommandNotFound); _, err = s.Command(late.ID) {
		if time.Now().After(deadline) {
			t.Fatalf("late command: %v, want pruned by the idle writer", err)
		}
		time.Sleep(time.Millisecond) // polling a condition, not timing
	}
}

func TestPruningGoesInBoundedSteps(t *testing.T) {
	clock := newFakeClock(t0)
	cfg := testConfig(t)
	cfg.Now, cfg.CommandRetention = clock.Now, time.Hour
	s := openStore(t, cfg)
	n := 2*commandPruneChunk + 10
	ids := make([]string, n)
	for i := range n {
		c, err := createCmd(t, s, fmt.Sprintf("d%d", i%7), "x", 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := moveCmd(t, s, c.Device, c.ID, bridge.CommandCanceled, false); err != nil {
			t.Fatal(err)
		}
		ids[i] = c.ID
	}
	clock.Add(2 * time.Hour)
	left := func() int {
		k := 0
		for _, id := range ids {
			if _, err := s.Command(id); err == nil {
				k++
			}
		}
		return k
	}
	for step, want := range []int{n - commandPruneChunk, n - 2*commandPruneChunk, 0} {
		wait(t, submitAsync(t, s, reading("x", clock.Now(), 1, "t")))
		if got := left(); got != want {
			t.Fatalf("after transaction %d: %d commands left, want %d (at most %d a transaction)", step+1, got, want, commandPruneChunk)
		}
	}
}

func TestCommandRetentionDefaultsToMaxAge(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxAge = 5 * time.Hour
	got, err := cfg.withDefaults()
	if err != nil || got.CommandRetention != 5*time.Hour {
		t.Fatalf("CommandRetention %s, %v; want MaxAge", got.CommandRetention, err)
	}
	cfg.CommandRetention = -time.Second
	if _, err := cfg.withDefaults(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("negative retention: %v", err)
	}
}

func TestPruningInAClusterDropsReplicasAndOwnCommands(t *testing.T) {
	clock := newFakeClock(t0)
	cfg := testConfig(t)
	cfg.Now, cfg.CommandRetention, cfg.Cluster = clock.Now, time.Hour, true
	s := openStore(t, cfg)
	if _, err := replicate(t, s, peerCmd(bridge.CommandCanceled)); err != nil {
		t.Fatal(err)
	}
	own, err := createCmd(t, s, "d1", "x", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := moveCmd(t, s, "d1", own.ID, bridge.CommandCanceled, false); err != nil {
		t.Fatal(err)
	}
	clock.Add(2 * time.Hour)
	wait(t, submitAsync(t, s, reading("d2", clock.Now(), 1, "t")))
	for _, id := range []string{peerCmdID, own.ID} {
		if _, err := s.Command(id); !errors.Is(err, ErrCommandNotFound) {
			t.Fatalf("command %s: %v, want pruned", id, err)
		}
	}
	if list, err := s.DeviceCommands("d1", "", 10); err != nil || len(list) != 0 {
		t.Fatalf("d1's list: %+v, %v", list, err)
	}
	op, err := replicate(t, s, peerCmd(bridge.CommandCanceled)) // the peer's copy again: a new replica
	if err != nil || !op.Changed {
		t.Fatalf("replica after pruning: changed %v, %v", op.Changed, err)
	}
}
