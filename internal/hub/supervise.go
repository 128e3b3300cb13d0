package hub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// part is one long-lived piece of a hub under supervision. Each function
// may be nil.
type part struct {
	name string
	// start starts the part and returns at once; an error stops the hub's
	// Start.
	start func(ctx context.Context) error
	// run serves until the part is stopped or fails; it runs in its own
	// goroutine, and an error it returns before the hub stops is a failure
	// of the whole hub.
	run func(ctx context.Context) error
	// stop stops the part and waits for it, bounded by ctx.
	stop func(ctx context.Context) error
}

// supervisor starts, watches and stops a hub's parts. Parts are listed in
// the order they stop; they start in the reverse order, so that what a
// part uses runs before it and stops after it.
type supervisor struct {
	parts    []part
	failed   chan error // the failures of parts while running
	stopping atomic.Bool
	wg       sync.WaitGroup // the run goroutines
}

func newSupervisor(parts []part) *supervisor {
	return &supervisor{parts: parts, failed: make(chan error, len(parts))}
}

// start starts every part, from the last to the first; it stops at the
// first part that fails to start and returns its error. The caller stops
// the supervisor then.
func (s *supervisor) start(ctx context.Context) error {
	for i := len(s.parts) - 1; i >= 0; i-- {
		p := s.parts[i]
		if p.start != nil {
			if err := p.start(ctx); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
		}
		if p.run != nil {
			s.wg.Add(1)
			go s.watch(ctx, p)
		}
	}
	return nil
}

// watch runs p and reports its failure, unless the hub is stopping.
func (s *supervisor) watch(ctx context.Context, p part) {
	defer s.wg.Done()
	err := p.run(ctx)
	if err == nil || s.stopping.Load() || ctx.Err() != nil {
		return
	}
	s.failed <- fmt.Errorf("%s: %w", p.name, err) // buffered: one per part
}

// failures returns the channel that receives the failure of a part while
// the hub runs.
func (s *supervisor) failures() <-chan error { return s.failed }

// stop stops every part, from the first to the last, waits for the run
// goroutines and returns the errors of all the parts, joined.
func (s *supervisor) stop(ctx context.Context) error {
	s.stopping.Store(true)
	var errs []error
	for _, p := range s.parts {
		if p.stop == nil {
			continue
		}
		if err := p.stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
		}
	}
	s.wg.Wait()
	return errors.Join(errs...)
}
