package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/config"
	"github.com/telehub/telehub/internal/hub"
	"github.com/telehub/telehub/storage"
)

// fixedNow is the clock of the data files these tests write, far from the
// real one; retention by age is off.
var fixedNow = time.Unix(1_000_000, 0)

// openAtFixedTime opens a store at path whose clock stands at fixedNow.
func openAtFixedTime(t *testing.T, path string) *storage.Store {
	t.Helper()
	s, err := storage.Open(storage.Config{Path: path, NoFsync: true, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return fixedNow }, MaxAge: 1 << 62})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dataFile writes n readings into a new data file in dir and returns its
// path.
func dataFile(t *testing.T, dir string, n int) string {
	t.Helper()
	path := filepath.Join(dir, "telehub.db")
	s := openAtFixedTime(t, path)
	done := make(chan bridge.Result, n)
	for i := range n {
		w := &bridge.Write{Device: "d1", Seen: fixedNow, Seq: uint64(i + 1), HasSeq: true, Done: func(r bridge.Result) { done <- r },
			Events: []bridge.Event{{Kind: bridge.KindTelemetry, Topic: "telemetry/d1/x", Data: bytes.Repeat([]byte("y"), 500)}}}
		if err := s.Submit(w); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		if r := <-done; r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDamagedDataFile: the hub refuses a damaged data file with one line
// naming the damage and the way out, and starts on what telehub recover
// makes of it.
func TestDamagedDataFile(t *testing.T) {
	for name, damage := range map[string]func(path string) error{
		"empty": func(path string) error { return os.Truncate(path, 0) },
		"cut to half": func(path string) error {
			info, err := os.Stat(path)
			if err != nil {
				return err
			}
			return os.Truncate(path, info.Size()/2)
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := dataFile(t, dir, 200)
			if err := damage(path); err != nil {
				t.Fatal(err)
			}
			var errOut bytes.Buffer
			args := []string{"--data-dir", dir, "--http-addr", "127.0.0.1:0", "--mqtt-addr", ""}
			if code := run(args, noEnv, io.Discard, &errOut); code != 1 {
				t.Fatalf("exit %d on a damaged file, want 1; stderr %q", code, errOut.String())
			}
			msg := errOut.String()
			if strings.Count(msg, "\n") != 1 || !strings.Contains(msg, path+" is damaged") ||
				!strings.Contains(msg, "telehub recover --from "+path) {
				t.Errorf("stderr %q, want one line naming the damage and telehub recover", msg)
			}

			var out bytes.Buffer
			to := filepath.Join(dir, "new.db")
			if code := run([]string{"recover", "--from", path, "--to", to}, noEnv, &out, &errOut); code != 0 {
				t.Fatalf("recover: exit %d; %s", code, errOut.String())
			}
			if !strings.Contains(out.String(), "saved: ") {
				t.Errorf("recover printed %q, want what it saved", out.String())
			}
			t.Log(out.String())
			if err := os.Rename(to, path); err != nil {
				t.Fatal(err)
			}
			cfg := config.Default()
			cfg.HTTPAddr, cfg.MQTTAddr, cfg.DataDir = "127.0.0.1:0", "", dir
			h, err := hub.New(cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatalf("hub on the recovered file: %v", err)
			}
			if err := h.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRecoverFlags(t *testing.T) {
	dir := t.TempDir()
	path := dataFile(t, dir, 1)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"recover"}, 2},
		{[]string{"recover", "--from", path}, 2},
		{[]string{"recover", "--nope"}, 2},
		{[]string{"recover", "--from", path, "--to", path}, 1}, // exists
		{[]string{"recover", "--from", filepath.Join(dir, "missing.db"), "--to", filepath.Join(dir, "n.db")}, 1},
		{[]string{"recover", "--help"}, 0},
	} {
		var errOut bytes.Buffer
		if code := run(tc.args, noEnv, io.Discard, &errOut); code != tc.code || (code != 0 && errOut.Len() == 0) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d with a message", tc.args, code, errOut.String(), tc.code)
		}
	}
}

// TestRecoverPrintsCommands: telehub recover says how many commands it
// carried and how many of them are still to be delivered.
func TestRecoverPrintsCommands(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "telehub.db")
	s := openAtFixedTime(t, path)
	done := make(chan bridge.Result, 1)
	submit := func(op *bridge.CommandOp) {
		t.Helper()
		if err := s.Submit(&bridge.Write{Device: "d1", Command: op, Done: func(r bridge.Result) { done <- r }}); err != nil {
			t.Fatal(err)
		}
		if r := <-done; r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	var ids []string
	for range 2 {
		op := &bridge.CommandOp{Create: &bridge.Command{Name: "reboot", Expires: fixedNow.Add(time.Hour)}}
		submit(op)
		ids = append(ids, op.Out.ID)
	}
	submit(&bridge.CommandOp{ID: ids[0], To: bridge.CommandCanceled})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"recover", "--from", path, "--to", filepath.Join(dir, "new.db")}, noEnv, &out, &errOut); code != 0 {
		t.Fatalf("recover: exit %d; %s", code, errOut.String())
	}
	if want := "commands: 2 (1 not yet final"; !strings.Contains(out.String(), want) {
		t.Errorf("recover printed %q, want %q", out.String(), want)
	}
}

// TestRecoverPrintsDeletedSessions: telehub recover says how many last
// sessions of deleted devices it carried.
func TestRecoverPrintsDeletedSessions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "telehub.db")
	s := openAtFixedTime(t, path)
	done := make(chan bridge.Result, 1)
	presence := &bridge.Presence{Online: true, Transport: bridge.TransportWS, Session: 3, Reason: bridge.ReasonConnect}
	if err := s.Submit(&bridge.Write{Device: "d1", Seen: fixedNow, Presence: presence, Done: func(r bridge.Result) { done <- r }}); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.Err != nil {
		t.Fatal(r.Err)
	}
	if err := s.DeleteDevice("d1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"recover", "--from", path, "--to", filepath.Join(dir, "new.db")}, noEnv, &out, &errOut); code != 0 {
		t.Fatalf("recover: exit %d; %s", code, errOut.String())
	}
	if want := "deleted devices: the last sessions of 1,"; !strings.Contains(out.String(), want) {
		t.Errorf("recover printed %q, want %q", out.String(), want)
	}
}
