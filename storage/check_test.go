package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/telehub/telehub/bridge"
)

// damageFixture is a closed data file of known content.
type damageFixture struct {
	cfg     Config
	events  int
	devices int
	data    map[uint64][]byte // event id -> Data
}

// filledFile writes n readings of 200 bytes, spread over 50 devices with
// seqs, into a new data file (about 1 300 pages of 4 KiB) and closes it.
func filledFile(t *testing.T, n int) damageFixture {
	t.Helper()
	fx := damageFixture{cfg: testConfig(t), events: n, devices: 50, data: make(map[uint64][]byte)}
	s, err := Open(fx.cfg)
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 160)
	chans := make([]<-chan bridge.Result, 0, n)
	for i := range n {
		dev := fmt.Sprintf("dev-%02d", i%fx.devices)
		w := withSeq(reading(dev, t0, i, "temp"), uint64(i/fx.devices+1))
		w.Events[0].Data = fmt.Appendf(nil, `{"i":%d,"pad":%q}`, i, pad)
		chans = append(chans, submitAsync(t, s, w))
	}
	for _, ch := range chans {
		r := wait(t, ch)
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	recs := scanAll(t, s)
	for _, r := range recs {
		fx.data[r.ID] = r.Data
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return fx
}

// pageInUse returns the first page at or after near that a bucket uses, so
// that damaging it is damage indeed (a free page may hold anything).
func pageInUse(t *testing.T, path string, near uint64) uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, _ := f.Stat()
	bf, err := openBoltFile(f, info.Size())
	if err != nil {
		t.Fatal(err)
	}
	w := boltWalk{bf: bf}
	if err := w.run(); err != nil || w.damaged > 0 {
		t.Fatalf("walk of the sound file: %v, %d damaged", err, w.damaged)
	}
	for id := near; id < bf.meta.hwm; id++ {
		if bf.seen[id/64]&(1<<(id%64)) != 0 {
			return id
		}
	}
	t.Fatalf("no page in use at or after %d (high-water mark %d)", near, bf.meta.hwm)
	return 0
}

// overwrite replaces page id of the file at path with what fill makes of
// the page's bytes.
func overwrite(t *testing.T, path string, id uint64, fill func(page []byte)) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, 4096)
	if _, err := f.ReadAt(page, int64(id)*4096); err != nil {
		t.Fatal(err)
	}
	fill(page)
	if _, err := f.WriteAt(page, int64(id)*4096); err != nil {
		t.Fatal(err)
	}
}

// Ways to damage a page.
var damages = map[string]func(page []byte){
	"random": func(p []byte) {
		r := rand.New(rand.NewPCG(1, 2))
		for i := range p {
			p[i] = byte(r.UintN(256))
		}
	},
	"zeros": func(p []byte) { clear(p) },
	// The header stays; the element table and keys are garbage.
	"elements": func(p []byte) {
		r := rand.New(rand.NewPCG(3, 4))
		for i := pageHeaderSize; i < len(p); i++ {
			p[i] = byte(r.UintN(256))
		}
	},
	// A sound page of another number, as a misdirected write leaves.
	"other page": func(p []byte) { byteOrder.PutUint64(p, byteOrder.Uint64(p)+1) },
}

// TestDamagedPageRefusedAndRecovered damages one page in use (near pages 3,
// 10, 50, 200 and 1000, in four ways): Open refuses the file with a message
// naming the page and what it held, without crashing, and Recover copies
// every other event, device and state into a file that opens.
func TestDamagedPageRefusedAndRecovered(t *testing.T) {
	sound := filledFile(t, 20_000)
	golden, err := os.ReadFile(sound.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, near := range []uint64{3, 10, 50, 200, 1000} {
		for name, damage := range damages {
			t.Run(fmt.Sprintf("page %d %s", near, name), func(t *testing.T) {
				t.Parallel() // each case works on its own copy of the file
				fx := sound
				fx.cfg.Path = filepath.Join(t.TempDir(), "telehub.db")
				if err := os.WriteFile(fx.cfg.Path, golden, 0o600); err != nil {
					t.Fatal(err)
				}
				id := pageInUse(t, fx.cfg.Path, near)
				overwrite(t, fx.cfg.Path, id, damage)

				err := openErr(t, fx.cfg)
				if want := fmt.Sprintf("page %d", id); !strings.Contains(err.Error(), want) {
					t.Errorf("Open error %q does not name %q", err, want)
				}
				rep := recoverInto(t, fx)
				if rep.DamageCount != 1 || rep.Damage[0].Page != id {
					t.Errorf("damage %+v (%d), want page %d only", rep.Damage, rep.DamageCount, id)
				}
			})
		}
	}
}

// openErr opens cfg, wants ErrDamaged, and returns the error.
func openErr(t *testing.T, cfg Config) error {
	t.Helper()
	s, err := Open(cfg)
	if err == nil {
		_ = s.Close()
		t.Fatal("Open accepted a damaged file")
	}
	if !errors.Is(err, ErrDamaged) {
		t.Fatalf("Open: %v, want ErrDamaged", err)
	}
	if !strings.Contains(err.Error(), cfg.Path) {
		t.Errorf("Open error %q does not name the file", err)
	}
	t.Logf("Open: %v", err)
	return err
}

// recoverChecked recovers the file of cfg into a new one and checks it; it
// returns the report and cfg with the new file's path.
func recoverChecked(t *testing.T, cfg Config) (RecoverReport, Config) {
	t.Helper()
	to := filepath.Join(t.TempDir(), "recovered.db")
	rep, err := Recover(cfg.Path, to)
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if err := Check(to); err != nil {
		t.Fatalf("Check of the recovered file: %v", err)
	}
	cfg.Path = to
	return rep, cfg
}

// recoverInto recovers fx's file into a new one, opens that as a store,
// and checks that everything it holds is what was written: every event
// with its data, the device records and their seqs; and that what the
// report counts is what the new file holds.
func recoverInto(t *testing.T, fx damageFixture) RecoverReport {
	t.Helper()
	rep, cfg := recoverChecked(t, fx.cfg)
	t.Logf("recovered %d events in %d records, %d devices, %d states; salvaged %+v; %d damaged: %v",
		rep.Events, rep.Records, rep.Devices, rep.States, rep.Salvaged, rep.DamageCount, rep.Damage[:min(3, len(rep.Damage))])
	s := openStore(t, cfg)
	recs := scanAll(t, s)
	if len(recs) != rep.Events {
		t.Errorf("recovered file holds %d events, the report says %d", len(recs), rep.Events)
	}
	for _, r := range recs {
		if want, ok := fx.data[r.ID]; !ok || !bytes.Equal(r.Data, want) {
			t.Fatalf("event %d: %s, want %s", r.ID, r.Data, want)
		}
	}
	devs, err := s.Devices()
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != rep.Devices {
		t.Errorf("recovered file holds %d devices, the report says %d", len(devs), rep.Devices)
	}
	if rep.DamageCount == 0 && (rep.Events != fx.events || rep.Devices != fx.devices) {
		t.Errorf("nothing damaged, yet %d events and %d devices of %d and %d", rep.Events, rep.Devices, fx.events, fx.devices)
	}
	// A device's seq survives: a resend of its last reading is a duplicate
	// (unless the record was found again in an older copy: then it may be
	// stored twice, never lost).
	if _, _, err := s.Device("dev-00"); err == nil && rep.Salvaged.Devices == 0 {
		last := uint64(fx.events / fx.devices)
		if r := submitSync(t, s, withSeq(reading("dev-00", t0, 0, "temp"), last)); !r.Duplicate {
			t.Errorf("resend of dev-00's seq %d after recovery: %+v, want a duplicate", last, r)
		}
	}
	return rep
}

// TestTruncatedFileRefusedAndRecovered cuts the file to half its size.
func TestTruncatedFileRefusedAndRecovered(t *testing.T) {
	fx := filledFile(t, 20_000)
	info, err := os.Stat(fx.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(fx.cfg.Path, info.Size()/2); err != nil {
		t.Fatal(err)
	}
	err = openErr(t, fx.cfg)
	if !strings.Contains(err.Error(), "cut short") {
		t.Errorf("Open error %q does not say the file was cut short", err)
	}
	rep := recoverInto(t, fx)
	if rep.DamageCount == 0 || rep.Events == 0 || rep.Events >= fx.events {
		t.Errorf("recovered %d of %d events with %d damaged parts, want some but not all", rep.Events, fx.events, rep.DamageCount)
	}
}

// TestEmptyFileRefused: a data file of 0 bytes is refused, not started
// empty; Recover makes a new empty file of it.
func TestEmptyFileRefused(t *testing.T) {
	cfg := testConfig(t)
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.Path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := openErr(t, cfg)
	if !strings.Contains(err.Error(), "empty") {
		t.Errorf("Open error %q does not say the file is empty", err)
	}
	rep := recoverInto(t, damageFixture{cfg: cfg})
	if rep.Problem == "" || rep.Events != 0 {
		t.Errorf("report %+v, want the problem and nothing saved", rep)
	}
}

// TestShortAndForeignFilesRefused: a file too short for its header pages,
// and one whose header pages are both unreadable.
func TestShortAndForeignFilesRefused(t *testing.T) {
	for name, content := range map[string][]byte{
		"short":   []byte("telehub"),
		"foreign": bytes.Repeat([]byte("not a data file "), 1024),
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t)
			if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o750); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(cfg.Path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			openErr(t, cfg)
		})
	}
}

// TestOneHeaderPageDamaged: bbolt keeps two copies of its header and uses
// the other when one is torn, as a crash during a commit can leave it: the
// store opens. Both damaged: refused.
func TestOneHeaderPageDamaged(t *testing.T) {
	fx := filledFile(t, 100)
	golden, err := os.ReadFile(fx.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	overwrite(t, fx.cfg.Path, 0, damages["random"])
	s := openStore(t, fx.cfg)
	if n := len(scanAll(t, s)); n == 0 {
		t.Error("no events after one header page was lost")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fx.cfg.Path, golden, 0o600); err != nil {
		t.Fatal(err)
	}
	overwrite(t, fx.cfg.Path, 0, damages["random"])
	overwrite(t, fx.cfg.Path, 1, damages["zeros"])
	err = openErr(t, fx.cfg)
	if !strings.Contains(err.Error(), "header page") {
		t.Errorf("Open error %q does not name the header pages", err)
	}
}

// TestRecoverRefusesExistingTarget: Recover never overwrites a file.
func TestRecoverRefusesExistingTarget(t *testing.T) {
	fx := filledFile(t, 10)
	if _, err := Recover(fx.cfg.Path, fx.cfg.Path); err == nil {
		t.Fatal("Recover into its own source succeeded")
	}
	if _, err := Recover(filepath.Join(t.TempDir(), "missing.db"), filepath.Join(t.TempDir(), "new.db")); err == nil {
		t.Fatal("Recover of a missing file succeeded")
	}
}

// TestSoundFilePassesCheck: a file with trimmed events (free pages), many
// devices and states passes Check, and Recover copies all of it.
func TestSoundFilePassesCheck(t *testing.T) {
	fx := filledFile(t, 3000)
	fx.cfg.MaxEvents = 1000
	s := openStore(t, fx.cfg)
	submitSync(t, s, reading("dev-00", t0, 1, "temp")) // trims to 1000
	kept := scanAll(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Check(fx.cfg.Path); err != nil {
		t.Fatalf("Check of a sound file: %v", err)
	}
	fx.events = len(kept)
	for _, r := range kept {
		fx.data[r.ID] = r.Data
	}
	rep := recoverInto(t, fx)
	if rep.DamageCount != 0 || rep.Events != len(kept) || rep.Devices != fx.devices || rep.Identity == "" {
		t.Errorf("report %+v, want all %d events, %d devices and the identity", rep, len(kept), fx.devices)
	}
}
