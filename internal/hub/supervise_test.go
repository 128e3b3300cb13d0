package hub

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// supervisorWait bounds the waits of these tests; it only guards against
// a hang.
const supervisorWait = 10 * time.Second

// trace records the order of starts and stops.
type trace struct {
	mu    sync.Mutex
	steps []string
}

func (tr *trace) add(step string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.steps = append(tr.steps, step)
}

func (tr *trace) get() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.steps)
}

// fakePart is a part whose run waits for its stop or fails with fail.
func fakePart(tr *trace, name string, fail <-chan error, stopErr error) part {
	stopped := make(chan struct{})
	return part{
		name:  name,
		start: func(context.Context) error { tr.add("start " + name); return nil },
		run: func(context.Context) error {
			select {
			case err := <-fail:
				return err
			case <-stopped:
				return nil
			}
		},
		stop: func(context.Context) error {
			tr.add("stop " + name)
			close(stopped)
			return stopErr
		},
	}
}

func TestSupervisorOrder(t *testing.T) {
	tr := new(trace)
	s := newSupervisor([]part{fakePart(tr, "http", nil, nil), fakePart(tr, "storage", nil, nil)})
	if err := s.start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []string{"start storage", "start http", "stop http", "stop storage"}
	if got := tr.get(); !slices.Equal(got, want) {
		t.Fatalf("steps %q, want %q", got, want)
	}
}

func TestSupervisorRunFailureSurfaces(t *testing.T) {
	tr := new(trace)
	fail := make(chan error, 1)
	s := newSupervisor([]part{fakePart(tr, "http server", fail, nil), fakePart(tr, "storage", nil, nil)})
	if err := s.start(t.Context()); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("accept: too many open files")
	fail <- boom
	select {
	case err := <-s.failures():
		if !errors.Is(err, boom) || err.Error() != "http server: accept: too many open files" {
			t.Fatalf("failure %v, want the part's error named", err)
		}
	case <-time.After(supervisorWait):
		t.Fatal("the failure of a running part was not reported")
	}
	if err := s.stop(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestSupervisorStopJoinsErrors(t *testing.T) {
	tr := new(trace)
	closeErr := errors.New("sync: input/output error")
	flushErr := errors.New("context deadline exceeded")
	s := newSupervisor([]part{
		fakePart(tr, "watchers", nil, flushErr),
		fakePart(tr, "liveness", nil, nil),
		fakePart(tr, "storage", nil, closeErr),
	})
	if err := s.start(t.Context()); err != nil {
		t.Fatal(err)
	}
	err := s.stop(t.Context())
	if !errors.Is(err, closeErr) || !errors.Is(err, flushErr) {
		t.Fatalf("stop = %v, want both errors", err)
	}
	if got := tr.get(); got[len(got)-1] != "stop storage" {
		t.Fatalf("a failed stop cut the shutdown short: %q", got)
	}
	select {
	case err := <-s.failures():
		t.Fatalf("a run that ended because of the stop was reported: %v", err)
	default:
	}
}

func TestSupervisorStartError(t *testing.T) {
	tr := new(trace)
	refused := errors.New("listen tcp :1883: address already in use")
	broker := fakePart(tr, "embedded mqtt broker", nil, nil)
	broker.start = func(context.Context) error { return refused }
	s := newSupervisor([]part{fakePart(tr, "http", nil, nil), broker, fakePart(tr, "storage", nil, nil)})
	if err := s.start(t.Context()); !errors.Is(err, refused) {
		t.Fatalf("start = %v, want the broker's error", err)
	}
	if got := tr.get(); slices.Contains(got, "start http") {
		t.Fatalf("started past a failed part: %q", got)
	}
	if err := s.stop(t.Context()); err != nil {
		t.Fatal(err)
	}
}
