//go:build unix

package storage

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	bolterrors "go.etcd.io/bbolt/errors"
)

// lockShared takes a shared lock on f, as a reader, waiting up to timeout
// while a process that writes the file (another hub) holds it; then it
// fails with bbolt's ErrTimeout, as bbolt's own open would. Closing f
// releases it.
func lockShared(f *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("lock: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: another process holds the file (another hub on the same data directory?)", bolterrors.ErrTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
