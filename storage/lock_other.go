//go:build !unix

package storage

import (
	"os"
	"time"
)

// lockShared does nothing where flock is missing: bbolt's own lock at open
// still keeps a second writer out.
func lockShared(*os.File, time.Duration) error { return nil }
