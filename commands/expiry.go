package commands

import (
	"container/heap"
	"time"

	"github.com/telehub/telehub/bridge"
)

// expiryHeap orders the pending commands by their expiry time.
type expiryHeap []*entry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].cmd.Expires.Before(h[j].cmd.Expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].slot, h[j].slot = i, j
}

func (h *expiryHeap) Push(x any) {
	e := x.(*entry)
	e.slot = len(*h)
	*h = append(*h, e)
}

func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.slot = -1
	return e
}

// run is the expiry goroutine: it sleeps until the earliest expiry and
// expires what is due; woken, it also sends the commands of the devices
// dispatchLater named.
func (s *Service) run() {
	defer close(s.done)
	timer := s.clock.NewTimer()
	defer timer.Stop()
	for {
		s.dispatchDue()
		if next, ok := s.expireDue(); ok {
			timer.ResetAt(next)
		} else {
			timer.Stop()
		}
		select {
		case <-s.stop:
			return
		case <-s.wake:
		case <-timer.C():
		}
	}
}

// wakeTimer makes the expiry goroutine look at the heap again.
func (s *Service) wakeTimer() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// expireDue expires every due command and returns the next expiry; ok is
// false when no command is pending.
func (s *Service) expireDue() (next time.Time, ok bool) {
	now := s.clock.Now()
	var due []*entry
	s.mu.Lock()
	for len(s.expiries) > 0 && !s.expiries[0].cmd.Expires.After(now) {
		e := heap.Pop(&s.expiries).(*entry)
		s.forget(e)
		due = append(due, e)
	}
	if len(s.expiries) > 0 {
		next, ok = s.expiries[0].cmd.Expires, true
	}
	s.mu.Unlock()
	for _, e := range due {
		s.submitFinal(e.cmd.Device, &bridge.CommandOp{ID: e.cmd.ID, To: bridge.CommandExpired, AnyDevice: true, At: now})
	}
	return next, ok
}
