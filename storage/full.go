package storage

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/telehub/telehub/bridge"
)

// ErrFull: the data file cannot grow: the disk (or the user's quota) is
// full, or Config.MaxBytes is reached. The writes of a commit that failed
// for it get it, wrapped, in their Done. It is a *bridge.Error of code
// bridge.CodeStorageFull, so that devices are told what happened. Writes
// work again by themselves once space returns.
var ErrFull error = &bridge.Error{
	Code:    bridge.CodeStorageFull,
	Message: "the hub is out of storage space: the reading was not stored; send it again later",
}

// failLogEvery is how often, at most, the store logs failing commits:
// one line per interval, with the number of failures since the last one.
const failLogEvery = 10 * time.Second

// fullError wraps err with ErrFull when it says the disk or the file
// cannot grow. bbolt wraps some of those errors as text only, hence the
// comparison of messages.
func fullError(err error) error {
	full := errors.Is(err, bolterrors.ErrMaxSizeReached) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
	if msg := err.Error(); !full && (strings.Contains(msg, syscall.ENOSPC.Error()) || strings.Contains(msg, syscall.EDQUOT.Error())) {
		full = true
	}
	if full {
		return fmt.Errorf("%w: %w", ErrFull, err)
	}
	return err
}

// WriteErr returns nil while the store can write, and the error of the
// last commit while commits fail (ErrFull, wrapped, for lack of space).
// A failing store tries, every TrimInterval, to commit more bytes than
// the failed commit needed, so that it reports writable again once space
// returns even when no write comes.
func (s *Store) WriteErr() error {
	if p := s.writeErr.Load(); p != nil {
		return *p
	}
	return nil
}

// maxProbe bounds the bytes a probe commits.
const maxProbe = 1 << 20

// metaProbe is the key of bucketMeta a probe writes and deletes.
var metaProbe = []byte("space_probe")

// writeHealth is the writer goroutine's record of failing commits.
type writeHealth struct {
	failures int       // failed commits since the last log line
	lastLog  time.Time // of the last failure logged, by Config.Now
	logged   bool      // whether a failure of this episode was logged
	need     int       // bytes a probe commits: more than any failed commit of the episode wrote
}

// writeFailed records a failed commit of what (a batch of writes, a
// trim) that wrote need bytes, and logs it, at most once per failLogEvery.
func (s *Store) writeFailed(what string, writes, need int, err error) {
	s.writeErr.Store(&err)
	h := &s.health
	h.failures++
	// The pages a commit rewrites around its data take room too: a probe
	// that fits where the commit did not would report space too early.
	h.need = max(h.need, min(4*need+64<<10, maxProbe))
	now := s.cfg.Now()
	if !h.lastLog.IsZero() && !now.Before(h.lastLog) && now.Sub(h.lastLog) < failLogEvery {
		return
	}
	s.log.Error(what+" failed: storage cannot write", "writes", writes, "failures", h.failures,
		"full", errors.Is(err, ErrFull), "err", err)
	h.lastLog, h.failures, h.logged = now, 0, true
}

// writeOK records a successful commit, and logs the end of failures when
// their start was logged.
func (s *Store) writeOK() {
	if s.writeErr.Load() == nil {
		return
	}
	s.writeErr.Store(nil)
	h := &s.health
	if h.logged {
		s.log.Info("storage writes again", "failures_not_logged", h.failures)
		h.failures = 0
	}
	h.logged, h.need = false, 0
}

// probe, while commits fail, commits more bytes than the largest failed
// commit wrote, then deletes them: when both commits succeed, there is
// space again.
func (s *Store) probe() {
	if s.writeErr.Load() == nil {
		return
	}
	put := func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(metaProbe, make([]byte, s.health.need))
	}
	del := func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(metaProbe) }
	err := s.db.Update(put)
	if err == nil {
		err = s.db.Update(del)
	}
	if err != nil {
		s.writeFailed("storage probe", 0, 0, fullError(err))
		return
	}
	s.writeOK()
}
