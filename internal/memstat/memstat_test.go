package memstat

import (
	"runtime"
	"testing"
)

// Memory held by live objects and by a parked goroutine's stack shows in
// what Live reports.
func TestLiveCountsHeapAndStacks(t *testing.T) {
	heap0, stacks0 := Live()
	keep := make([][]byte, 1024)
	for i := range keep {
		keep[i] = make([]byte, 1024)
	}
	stop := make(chan struct{})
	parked := make(chan struct{})
	go func() {
		var deep func(n int) byte
		deep = func(n int) byte {
			var pad [512]byte
			if n == 0 {
				close(parked)
				<-stop
				return pad[0]
			}
			return deep(n-1) + pad[n%512]
		}
		deep(64)
	}()
	<-parked
	heap1, stacks1 := Live()
	close(stop)
	if heap1 < heap0+1<<20 {
		t.Errorf("heap %d -> %d with 1 MiB more live", heap0, heap1)
	}
	if stacks1 < stacks0+16<<10 {
		t.Errorf("stacks %d -> %d with a goroutine parked 32 KiB deep", stacks0, stacks1)
	}
	runtime.KeepAlive(keep)
}
