// Package memstat reads what the memory benchmarks of telehub count: the
// live heap and the goroutine stacks of the process.
package memstat

import (
	"runtime"
	"runtime/metrics"
)

// Live returns the bytes of live heap objects and of goroutine stacks
// after two garbage collections: stacks that shrink at the first are
// counted at their smaller size.
func Live() (heap, stacks uint64) {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
	}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}
