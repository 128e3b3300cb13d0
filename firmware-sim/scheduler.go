package firmwaresim

import (
	"sync"
	"time"
)

// taskKind says what a scheduled task does to its device.
type taskKind uint8

const (
	taskReading   taskKind = iota // take a reading, send it, maybe inject faults
	taskHeartbeat                 // send a heartbeat
	taskConnect                   // hand the device to a connector
	taskSilence                   // stop the device's readings, then mute it
	taskCommand                   // run a command the device received and answer it
)

// task is one timed action on a device; at is in ns since the run started.
type task struct {
	at   int64
	dev  *device
	kind taskKind
	gen  uint32   // taskReading: the device's reading chain (see device.readingGen)
	cmd  *command // taskCommand: the command to run
}

// scheduler drives the timed actions of a shard of devices from one
// goroutine with one timer: a min-heap of tasks ordered by time. Any
// goroutine may add tasks; only the loop runs them.
type scheduler struct {
	mu   sync.Mutex
	heap []task
	wake chan struct{} // capacity 1: a new earliest task or stop
}

func newScheduler() *scheduler {
	return &scheduler{wake: make(chan struct{}, 1)}
}

// add schedules t and wakes the loop when t is now the earliest task.
func (s *scheduler) add(t task) {
	s.mu.Lock()
	s.heap = append(s.heap, t)
	i := s.up(len(s.heap) - 1)
	s.mu.Unlock()
	if i == 0 {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// Len returns the number of tasks waiting.
func (s *scheduler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.heap)
}

// pop returns the earliest task when it is due at now; otherwise how long
// to wait for it (-1 when there is none).
func (s *scheduler) pop(now int64) (task, time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.heap) == 0 {
		return task{}, -1, false
	}
	if wait := s.heap[0].at - now; wait > 0 {
		return task{}, time.Duration(wait), false
	}
	t := s.heap[0]
	last := len(s.heap) - 1
	s.heap[0] = s.heap[last]
	s.heap[last] = task{}
	s.heap = s.heap[:last]
	s.down(0)
	return t, 0, true
}

// loop runs due tasks with run until stop is closed; clock returns ns
// since the run started.
func (s *scheduler) loop(stop <-chan struct{}, clock func() int64, run func(task)) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-stop:
			return
		default:
		}
		t, wait, ok := s.pop(clock())
		if ok {
			run(t)
			continue
		}
		if wait < 0 {
			wait = time.Hour
		}
		timer.Reset(wait)
		select {
		case <-stop:
			return
		case <-s.wake:
		case <-timer.C:
		}
	}
}

func (s *scheduler) up(i int) int {
	for i > 0 {
		parent := (i - 1) / 2
		if s.heap[parent].at <= s.heap[i].at {
			break
		}
		s.heap[parent], s.heap[i] = s.heap[i], s.heap[parent]
		i = parent
	}
	return i
}

func (s *scheduler) down(i int) {
	n := len(s.heap)
	for {
		least, l, r := i, 2*i+1, 2*i+2
		if l < n && s.heap[l].at < s.heap[least].at {
			least = l
		}
		if r < n && s.heap[r].at < s.heap[least].at {
			least = r
		}
		if least == i {
			return
		}
		s.heap[i], s.heap[least] = s.heap[least], s.heap[i]
		i = least
	}
}
