// Package stopper is the stop signal and the wait of a part's own
// goroutines, for parts with a Shutdown(ctx) that may return before they
// have ended and be called again.
//
// The owner counts each goroutine with Add before starting it (never
// after Stop: guard both with the same lock), each goroutine calls Exit
// when it returns and watches Done, and Shutdown calls Stop, then Wait.
package stopper

import (
	"context"
	"sync"
)

// Stopper is a stop signal and a wait group; the zero value is not
// ready: use New.
type Stopper struct {
	done    chan struct{}
	stopped chan struct{} // closed once wg is done after Stop
	once    sync.Once
	wg      sync.WaitGroup
}

// New returns a Stopper that is not stopped.
func New() *Stopper {
	return &Stopper{done: make(chan struct{}), stopped: make(chan struct{})}
}

// Add counts n goroutines more.
func (s *Stopper) Add(n int) { s.wg.Add(n) }

// Exit is called by a counted goroutine when it returns.
func (s *Stopper) Exit() { s.wg.Done() }

// Done is closed by Stop.
func (s *Stopper) Done() <-chan struct{} { return s.done }

// Stopping reports whether Stop was called.
func (s *Stopper) Stopping() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Stop closes Done and starts waiting for the counted goroutines; it
// reports whether this call was the first.
func (s *Stopper) Stop() (first bool) {
	s.once.Do(func() {
		first = true
		close(s.done)
		go func() {
			defer close(s.stopped)
			s.wg.Wait()
		}()
	})
	return first
}

// Wait waits, after Stop, until every counted goroutine has exited; it
// returns ctx's error when ctx ends first, and can be called again.
func (s *Stopper) Wait(ctx context.Context) error {
	select {
	case <-s.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
