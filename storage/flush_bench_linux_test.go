package storage

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchmarkDiskFlush measures what the disk under the test's temporary
// directory charges for durability, without bbolt or the hub: the floor
// under any commit's latency on that machine. Each iteration writes 4 KiB
// pages into blocks written before (as a store that has reached its
// retention does) and waits for fdatasync, the call bbolt makes:
//
//   - flushes=1: one page, one fdatasync (what one append-only log record
//     would cost);
//   - flushes=2: the pages of a commit, fdatasync, then a meta page and a
//     second fdatasync (what each bbolt commit does, so that the meta page
//     never reaches the disk before the pages it points to).
//
// It reports p50 and p99 in microseconds; run with -benchtime 2000x.
func BenchmarkDiskFlush(b *testing.B) {
	for _, flushes := range []int{1, 2} {
		b.Run("flushes="+strconv.Itoa(flushes), func(b *testing.B) {
			benchDiskFlush(b, flushes)
		})
	}
}

func benchDiskFlush(b *testing.B, flushes int) {
	const page, pages = 4096, 256
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "flush"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, page)
	for i := range pages {
		if _, err := f.WriteAt(buf, int64(i*page)); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	fd := int(f.Fd())
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		buf[0] = byte(i)
		for n := range flushes {
			// Data pages of the commit first, then (second round) its meta page.
			if _, err := f.WriteAt(buf, int64((2+(i*flushes+n)%(pages-2))*page)); err != nil {
				b.Fatal(err)
			}
			if err := syscall.Fdatasync(fd); err != nil {
				b.Fatal(err)
			}
		}
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
}
