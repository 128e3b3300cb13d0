package stopper

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStopWaitsForTheGoroutines(t *testing.T) {
	s := New()
	release := make(chan struct{})
	s.Add(1)
	go func() {
		defer s.Exit()
		<-s.Done()
		<-release
	}()
	if s.Stopping() {
		t.Fatal("stopping before Stop")
	}
	if !s.Stop() || s.Stop() {
		t.Fatal("Stop is not first exactly once")
	}
	if !s.Stopping() {
		t.Fatal("not stopping after Stop")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a goroutine still running: %v, want the context's error", err)
	}
	close(release)
	if err := s.Wait(context.Background()); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

func TestStopWithoutGoroutines(t *testing.T) {
	s := New()
	s.Stop()
	if err := s.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}
