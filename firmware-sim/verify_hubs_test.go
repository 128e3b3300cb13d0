package firmwaresim

import (
	"context"
	"errors"
	"flag"
	"io"
	"slices"
	"testing"
	"time"
)

// TestVerifyHubs verifies one run against several hubs: the hub that has
// the readings passes, a hub that never received them reports every
// reading missing, and VerifyHub checks any hub again after the run.
func TestVerifyHubs(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	full, empty := startRealHub(t, nil), startRealHub(t, nil)
	fullURL, emptyURL := "http://"+full.HTTPAddr(), "http://"+empty.HTTPAddr()
	cfg := Config{
		Hub: fullURL, Transport: TransportWS, Devices: 3, Rate: 50, Heartbeat: -1,
		Verify: true, VerifyHubs: []string{fullURL, emptyURL}, DrainTimeout: 3 * time.Second, // also how long the empty hub is waited for
	}
	s, sum, err := runSim(t, cfg, "100 acks", acked(100))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	requireVerified(t, sum)
	if len(sum.VerifyHubs) != 2 || sum.VerifyHubs[0].Hub != fullURL || !sum.VerifyHubs[0].OK ||
		sum.VerifyHubs[1].OK || sum.VerifyHubs[1].Missing != int(sum.Acked) {
		t.Fatalf("verify hubs %+v, want the first OK and every one of %d readings missing from the second", sum.VerifyHubs, sum.Acked)
	}
	if !sum.Failed() {
		t.Fatal("a run whose replica misses readings does not fail")
	}
	again, err := s.VerifyHub(context.Background(), fullURL)
	if err != nil || !again.OK || again.Expected != int(sum.Acked) || again.Duplicates != 0 {
		t.Fatalf("VerifyHub again: %+v, %v; want OK with %d expected (marks of earlier verifies forgotten)", again, err, sum.Acked)
	}
}

func TestVerifyHubBeforeRun(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.VerifyHub(context.Background(), "http://127.0.0.1:1"); !errors.Is(err, ErrNotRun) {
		t.Fatalf("VerifyHub before Run: %v, want ErrNotRun", err)
	}
}

func TestVerifyHubFlag(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"--verify-hub", "http://a:1, http://b:2", "--verify-hub", "http://c:3"}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"http://a:1", "http://b:2", "http://c:3"}; !slices.Equal(c.VerifyHubs, want) {
		t.Fatalf("verify hubs %q, want %q", c.VerifyHubs, want)
	}
}

// TestVerifyHubsWithoutVerify checks only the hubs of VerifyHubs when
// Verify is off: the run's Hub may be a load balancer's address.
func TestVerifyHubsWithoutVerify(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	h := startRealHub(t, nil)
	hub := "http://" + h.HTTPAddr()
	cfg := Config{Hub: hub, Transport: TransportWS, Devices: 2, Rate: 50, Heartbeat: -1, VerifyHubs: []string{hub}}
	_, sum, err := runSim(t, cfg, "50 acks", acked(50))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if sum.Verify != nil || len(sum.VerifyHubs) != 1 || !sum.VerifyHubs[0].OK || sum.VerifyHubs[0].Expected != int(sum.Acked) {
		t.Fatalf("verify %+v, verify hubs %+v: want only the hub of VerifyHubs checked, OK", sum.Verify, sum.VerifyHubs)
	}
}
