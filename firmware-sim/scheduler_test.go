package firmwaresim

import (
	"sync"
	"testing"
	"time"
)

func TestSchedulerRunsDueTasksInTimeOrder(t *testing.T) {
	s := newScheduler()
	for _, at := range []int64{50, 10, 30, 20, 40, 10} {
		s.add(task{at: at})
	}
	s.add(task{at: 1 << 62}) // never due
	stop := make(chan struct{})
	var got []int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.loop(stop, func() int64 { return 100 }, func(tk task) {
			got = append(got, tk.at)
			if len(got) == 6 {
				close(stop)
			}
		})
	}()
	<-done
	want := []int64{10, 10, 20, 30, 40, 50}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ran %v, want %v", got, want)
		}
	}
	if s.Len() != 1 {
		t.Fatalf("%d tasks left, want the one not due", s.Len())
	}
}

func TestSchedulerWakesForEarlierTask(t *testing.T) {
	s := newScheduler()
	start := time.Now()
	clock := func() int64 { return int64(time.Since(start)) }
	s.add(task{at: int64(time.Hour)})
	stop := make(chan struct{})
	ran := make(chan taskKind, 1)
	var wg sync.WaitGroup
	wg.Go(func() { s.loop(stop, clock, func(tk task) { ran <- tk.kind }) })
	s.add(task{at: clock(), kind: taskHeartbeat}) // earlier than the sleeping timer
	select {
	case k := <-ran:
		if k != taskHeartbeat {
			t.Fatalf("ran kind %d", k)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("loop did not wake for an earlier task")
	}
	close(stop)
	wg.Wait()
}

func TestSchedulerHeapOrderUnderChurn(t *testing.T) {
	s := newScheduler()
	for i := range 1000 {
		s.add(task{at: int64((i * 7919) % 1000)})
	}
	prev := int64(-1)
	for range 1000 {
		tk, _, ok := s.pop(1 << 40)
		if !ok || tk.at < prev {
			t.Fatalf("popped %d after %d (ok %v)", tk.at, prev, ok)
		}
		prev = tk.at
	}
	if _, wait, ok := s.pop(0); ok || wait != -1 {
		t.Fatalf("empty heap popped (ok %v, wait %v)", ok, wait)
	}
	s.add(task{at: 500})
	if _, wait, ok := s.pop(200); ok || wait != 300 {
		t.Fatalf("task not due: ok %v wait %v, want wait 300", ok, wait)
	}
}

func BenchmarkSchedulerAddPop(b *testing.B) {
	s := newScheduler()
	for i := range 10000 {
		s.add(task{at: int64(i)})
	}
	b.ReportAllocs()
	for i := int64(0); b.Loop(); i++ {
		tk, _, _ := s.pop(1 << 62)
		tk.at += 10000
		s.add(tk)
	}
}
