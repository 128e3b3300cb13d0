package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// ErrDamaged: the data file is damaged: part of it cannot be read, so the
// store refuses to open it. Recover copies what is readable into a new
// file.
var ErrDamaged = errors.New("data file damaged")

// DamageError is the error of Check and Open on a damaged file. It wraps
// ErrDamaged.
type DamageError struct {
	// Path is the data file.
	Path string
	// Problem says what is wrong with the file as a whole (empty, cut
	// short, no readable header); "" when the damage is in its pages.
	Problem string
	// Damage lists the first damaged parts found; Count counts all.
	Damage []Damage
	Count  int
}

func (e *DamageError) Error() string {
	if e.Problem != "" {
		return fmt.Sprintf("data file %s is damaged: %s", e.Path, e.Problem)
	}
	msg := fmt.Sprintf("data file %s is damaged: %s", e.Path, e.Damage[0])
	if e.Count > 1 {
		msg += fmt.Sprintf(" (and %d more damaged pages)", e.Count-1)
	}
	return msg
}

func (e *DamageError) Unwrap() error { return ErrDamaged }

// Check reads the whole data file at path the way the store will use it
// and returns a *DamageError when part of it cannot be read: an empty
// file, a file shorter than its pages, a page that is not what its parent
// says. A missing file is no error (Open creates it). Check reads every
// page in use once, with plain reads; it never crashes on a damaged file.
// It waits up to DefaultOpenTimeout while another process writes the file.
func Check(path string) error {
	_, err := checkFile(path, DefaultOpenTimeout)
	return err
}

// checkFile is Check that also returns a note on a header page that could
// not be read while the other one could: a crash during a commit leaves
// that, and bbolt uses the other copy.
func checkFile(path string, timeout time.Duration) (note string, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("storage: check %s: %w", path, err)
	}
	defer f.Close()
	// A hub writing the file meanwhile would make a sound file look
	// damaged: wait for it to let go, as bbolt's open does.
	if err := lockShared(f, timeout); err != nil {
		return "", fmt.Errorf("storage: check %s: %w", path, err)
	}
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("storage: check %s: %w", path, err)
	}
	damaged := func(problem string) error { return &DamageError{Path: path, Problem: problem} }
	if info.Size() == 0 {
		return "", damaged("it is empty (0 bytes); a data file in use never is")
	}
	bf, err := openBoltFile(f, info.Size())
	if err != nil {
		return "", damaged(err.Error())
	}
	if end := bf.pagesEnd(); info.Size() < end {
		return bf.metaNote, damaged(fmt.Sprintf("it is %d bytes long, but its %d pages of %d bytes need %d: it was cut short",
			info.Size(), bf.meta.hwm, bf.pageSize, end))
	}
	w := boltWalk{bf: bf}
	if err := w.run(); err != nil {
		return bf.metaNote, fmt.Errorf("storage: check %s: %w", path, err)
	}
	if w.damaged == 0 {
		err = bf.checkFreelist()
		if err != nil {
			return bf.metaNote, damaged(err.Error())
		}
		return bf.metaNote, nil
	}
	return bf.metaNote, &DamageError{Path: path, Damage: w.damage, Count: w.damaged}
}

// checkFreelist checks the freelist page, when the file keeps one (files
// of other tools; telehub rebuilds the list at open): readable, and
// listing only pages below the high-water mark that no bucket uses.
// It runs after a walk, which marked the pages in use.
func (bf *boltFile) checkFreelist() error {
	id := bf.meta.freelist
	if id == boltNoFreelist {
		return nil
	}
	buf, err := bf.read(id, 1, 0)
	if err == nil {
		if overflow := uint64(byteOrder.Uint32(buf[12:])); overflow > 0 && overflow < bf.meta.hwm-id {
			buf, err = bf.read(id, overflow+1, 0)
		}
	}
	if err != nil {
		return fmt.Errorf("freelist page %d: %w", id, err)
	}
	if byteOrder.Uint64(buf) != id || byteOrder.Uint16(buf[8:]) != flagFreelist {
		return fmt.Errorf("freelist page %d is not a freelist page", id)
	}
	first, n := pageHeaderSize, uint64(byteOrder.Uint16(buf[10:]))
	if n == 0xFFFF {
		n, first = byteOrder.Uint64(buf[pageHeaderSize:]), pageHeaderSize+8
	}
	if n > uint64(len(buf)-first)/8 {
		return fmt.Errorf("freelist page %d lists more pages than it holds", id)
	}
	for i := range n {
		free := byteOrder.Uint64(buf[first+int(i)*8:])
		if free < 2 || free >= bf.meta.hwm || bf.seen[free/64]&(1<<(free%64)) != 0 {
			return fmt.Errorf("freelist page %d lists page %d, which is not free", id, free)
		}
	}
	return nil
}

// checkBeforeOpen checks the file Open is about to hand to bbolt, and
// logs the note of a header page that could not be read.
func checkBeforeOpen(cfg Config) error {
	start := time.Now()
	note, err := checkFile(cfg.Path, cfg.OpenTimeout)
	if note != "" {
		cfg.Logger.Warn("data file header page unreadable; the other copy is used, as after a crash during a commit",
			"path", cfg.Path, "detail", note)
	}
	if err != nil {
		return err
	}
	cfg.Logger.Debug("data file checked", "path", cfg.Path, "took", time.Since(start))
	return nil
}
