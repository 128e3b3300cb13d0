//go:build !unix

package hub

// openFileLimit reports no limit where the system has no RLIMIT_NOFILE:
// the connection caps are then the configured ones.
func openFileLimit() (uint64, bool) { return 0, false }
