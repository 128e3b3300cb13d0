package devices

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// rounder is a connection with bytes to read: round reads and handles
// them on the calling goroutine.
type rounder interface{ round() }

// roundWorkers is how many goroutines per processor wait to run rounds.
const roundWorkers = 2

// roundPool runs the rounds of the connections that are read without a
// goroutine of their own (ws_direct.go, mqtt_direct.go). Its workers
// start with the first round and keep the stack that handling packets
// grew, which a goroutine started for each round would grow again every
// time.
type roundPool struct {
	work atomic.Pointer[chan rounder] // nil until the first round

	mu      sync.Mutex
	stopped bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

// run runs r's round on an idle worker, or on a goroutine of its own when
// none is idle: a round that waits (a device over its rate, a full
// storage queue) never holds up another connection's.
func (p *roundPool) run(r rounder) {
	if work := p.workers(); work != nil {
		select {
		case work <- r:
			return
		default:
		}
	}
	go r.round()
}

// workers returns the channel idle workers wait on, starting them once;
// nil after close.
func (p *roundPool) workers() chan rounder {
	if w := p.work.Load(); w != nil {
		return *w
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return nil
	}
	if w := p.work.Load(); w != nil {
		return *w
	}
	work := make(chan rounder)
	p.stop = make(chan struct{})
	n := roundWorkers * runtime.GOMAXPROCS(0)
	p.wg.Add(n)
	for range n {
		go p.worker(work, p.stop)
	}
	p.work.Store(&work)
	return work
}

func (p *roundPool) worker(work <-chan rounder, stop <-chan struct{}) {
	defer p.wg.Done()
	for {
		select {
		case <-stop:
			return
		case r := <-work:
			r.round()
		}
	}
}

// close stops the idle workers and waits for the busy ones to finish
// their rounds; later rounds run on goroutines of their own.
func (p *roundPool) close() {
	p.mu.Lock()
	if !p.stopped {
		p.stopped = true
		if p.stop != nil {
			close(p.stop)
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
}
