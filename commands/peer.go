package commands

import (
	"fmt"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/topic"
)

// Commands in a cluster: every hub keeps every command. A command created
// on one hub, and each later change of it on any hub, reaches the other
// hubs as the command object after the change; ApplyPeer stores that copy
// (moving the state only forward) and follows it here: a command new to
// this hub and not final joins its pending commands, so that whichever hub
// the device is connected to delivers it, and a final state ends the waits
// for it on every hub.

// ApplyPeer stores a peer hub's copy of c after one of its changes there,
// without waiting for the commit; done, when set, is called after it with
// the write's error (nil when the copy changed nothing). A command new here
// and not final goes to its device at once when the device is connected to
// this hub.
func (s *Service) ApplyPeer(c bridge.Command, done func(error)) error {
	if err := topic.ValidDeviceID(c.Device); err != nil {
		return fmt.Errorf("%w: device: %w", ErrInvalid, err)
	}
	op := &bridge.CommandOp{Replica: &c, At: s.clock.Now()}
	w := &bridge.Write{Device: c.Device, Command: op, Done: func(r bridge.Result) {
		if r.Err == nil && op.Changed {
			s.followPeer(op.Out)
		}
		if done != nil {
			done(r.Err)
		}
	}}
	if err := s.store.Submit(w); err != nil {
		return fmt.Errorf("submit a peer's command: %w", err)
	}
	return nil
}

// followPeer brings the memory in line with a peer's change of c, as
// committed. It runs on the store's writer goroutine and never blocks:
// sending a new command to its device is left to the service goroutine.
func (s *Service) followPeer(c bridge.Command) {
	s.mu.Lock()
	e := s.byID[c.ID]
	_, finishing := s.finishing[c.ID]
	switch {
	case e == nil && !c.State.Final() && !finishing:
		s.mu.Unlock()
		s.remember(c)
		s.dispatchLater(c.Device)
		return
	case e != nil && !c.State.Final():
		e.cmd.State = c.State
		s.mu.Unlock()
		return
	case !c.State.Final():
		// This hub's own final change of it is on its way to the store.
		s.mu.Unlock()
		return
	case e != nil:
		s.forget(e)
	}
	ws := s.waiters[c.ID]
	delete(s.waiters, c.ID)
	delete(s.finishing, c.ID)
	s.mu.Unlock()
	for _, w := range ws {
		w <- c // capacity 1, one send
	}
}

// dispatchLater has the service goroutine send dev's queued commands.
func (s *Service) dispatchLater(dev string) {
	s.mu.Lock()
	s.due[dev] = struct{}{}
	s.mu.Unlock()
	s.wakeTimer()
}

// dispatchDue sends the queued commands of the devices dispatchLater
// named. It runs on the service goroutine.
func (s *Service) dispatchDue() {
	s.mu.Lock()
	devs := make([]string, 0, len(s.due))
	for dev := range s.due {
		devs = append(devs, dev)
	}
	clear(s.due)
	s.mu.Unlock()
	for _, dev := range devs {
		s.dispatch(dev, false)
	}
}
