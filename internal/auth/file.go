package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// fileVersion is the format version of the credentials file.
const fileVersion = 1

// maxFileSize bounds what loadFile reads.
const maxFileSize = 64 << 20

// fileFormat is the credentials file: hashes only, sorted by id and name.
type fileFormat struct {
	Version  int           `json:"version"`
	Devices  []fileDevice  `json:"devices"`
	Watchers []fileWatcher `json:"watchers"`
}

type fileDevice struct {
	Device  string    `json:"device"`
	Hash    string    `json:"hash"` // "sha256:<hex>"
	Created time.Time `json:"created"`
}

type fileWatcher struct {
	Name   string   `json:"name"`
	Hash   string   `json:"hash"`
	Topics []string `json:"topics"`
	// Commands is the commands scope: device-id patterns; absent when
	// none.
	Commands []string  `json:"commands,omitempty"`
	Created  time.Time `json:"created"`
}

// parseFile decodes and checks a credentials file: the version, every
// name, hash and topic filter, no duplicates. Errors wrap ErrBadFile.
func parseFile(data []byte) (devices map[string]device, watchers []*watcher, err error) {
	var ff fileFormat
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ff); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadFile, err)
	}
	if dec.More() {
		return nil, nil, fmt.Errorf("%w: data after the JSON object", ErrBadFile)
	}
	if ff.Version != fileVersion {
		return nil, nil, fmt.Errorf("%w: version %d, want %d", ErrBadFile, ff.Version, fileVersion)
	}
	if devices, err = parseFileDevices(ff.Devices); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadFile, err)
	}
	if watchers, err = parseFileWatchers(ff.Watchers); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadFile, err)
	}
	return devices, watchers, nil
}

func parseFileDevices(fds []fileDevice) (map[string]device, error) {
	out := make(map[string]device, len(fds))
	for _, fd := range fds {
		if err := validName("device id", fd.Device); err != nil {
			return nil, err
		}
		if _, dup := out[fd.Device]; dup {
			return nil, fmt.Errorf("device %q listed twice", fd.Device)
		}
		d, err := parseStoredHash(fd.Hash)
		if err != nil {
			return nil, fmt.Errorf("device %q: %w", fd.Device, err)
		}
		out[fd.Device] = device{hash: d, source: SourceAPI, created: fd.Created}
	}
	return out, nil
}

func parseFileWatchers(fws []fileWatcher) ([]*watcher, error) {
	out := make([]*watcher, 0, len(fws))
	names := make(map[string]bool, len(fws))
	for _, fw := range fws {
		if err := validName("watcher name", fw.Name); err != nil {
			return nil, err
		}
		if names[fw.Name] {
			return nil, fmt.Errorf("watcher %q listed twice", fw.Name)
		}
		names[fw.Name] = true
		d, err := parseStoredHash(fw.Hash)
		if err != nil {
			return nil, fmt.Errorf("watcher %q: %w", fw.Name, err)
		}
		scopes, err := ParseScopes(fw.Topics)
		if err != nil {
			return nil, fmt.Errorf("watcher %q: %w", fw.Name, err)
		}
		commands, err := ParseCommandScopes(fw.Commands)
		if err != nil {
			return nil, fmt.Errorf("watcher %q: %w", fw.Name, err)
		}
		out = append(out, &watcher{name: fw.Name, hash: d, scopes: scopes, commands: commands, source: SourceAPI, created: fw.Created})
	}
	return out, nil
}

// parseStoredHash parses a "sha256:<hex>" hash; the file never holds a
// plain token.
func parseStoredHash(s string) (digest, error) {
	rest, ok := strings.CutPrefix(s, HashPrefix)
	if !ok {
		return digest{}, fmt.Errorf("%w: hash must start with %s", ErrBadToken, HashPrefix)
	}
	return parseDigest(rest)
}

// loadFile merges the credentials file into snap, which holds the
// configuration's credentials. A missing file holds none.
func (a *Auth) loadFile(snap *snapshot) error {
	data, err := a.readFile()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", a.path, err)
	}
	devices, watchers, err := parseFile(data)
	if err != nil {
		return fmt.Errorf("%s: %w", a.path, err)
	}
	for id, d := range devices {
		if _, ok := snap.devices[id]; ok {
			a.log.Warn("credentials file: device also defined in the configuration; the configuration's token is used", "device", id)
			continue
		}
		snap.devices[id] = d
	}
	for _, w := range watchers {
		if _, ok := snap.watchers[w.name]; ok {
			a.log.Warn("credentials file: watcher also defined in the configuration; the configuration's token is used", "watcher", w.name)
			continue
		}
		if err := snap.addWatcher(w); err != nil {
			return fmt.Errorf("%s: %w: %w", a.path, ErrBadFile, err)
		}
	}
	return nil
}

// readFile reads the credentials file, warning when others may read it.
// A missing file is fs.ErrNotExist, unwrapped.
func (a *Auth) readFile() ([]byte, error) {
	f, err := os.Open(a.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadFile, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadFile, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: not a regular file", ErrBadFile)
	}
	if st.Mode().Perm()&0o077 != 0 {
		a.log.Warn("credentials file is readable by others; it holds only hashes, but should be mode 0600",
			"path", a.path, "mode", st.Mode().Perm().String())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrBadFile, err)
	case len(data) > maxFileSize:
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadFile, maxFileSize)
	}
	return data, nil
}

// encodeFile returns the credentials file of the API-issued credentials
// of s, sorted by device id and watcher name.
func encodeFile(s *snapshot) ([]byte, error) {
	ff := fileFormat{Version: fileVersion, Devices: []fileDevice{}, Watchers: []fileWatcher{}}
	for _, id := range slices.Sorted(maps.Keys(s.devices)) {
		if d := s.devices[id]; d.source == SourceAPI {
			ff.Devices = append(ff.Devices, fileDevice{Device: id, Hash: d.hash.String(), Created: d.created})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.watchers)) {
		if w := s.watchers[name]; w.source == SourceAPI {
			ff.Watchers = append(ff.Watchers, fileWatcher{Name: name, Hash: w.hash.String(),
				Topics: filterStrings(w.scopes), Commands: commandPatterns(w.commands), Created: w.created})
		}
	}
	data, err := json.MarshalIndent(ff, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// fileSyncer is the part of *os.File that finishing a temporary file
// needs.
type fileSyncer interface {
	Sync() error
	Close() error
}

// syncAndClose flushes f to disk and closes it.
func syncAndClose(f fileSyncer) error {
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// writeFile replaces the credentials file with the credentials of s:
// written to a temporary file (mode 0600) in the same directory, flushed,
// renamed over the old file, and the directory flushed. Readers see the
// old file or the new one, never a part. Errors wrap ErrPersist.
func (a *Auth) writeFile(s *snapshot) error {
	data, err := encodeFile(s)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPersist, err)
	}
	dir := filepath.Dir(a.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%w: %w", ErrPersist, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(a.path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPersist, err)
	}
	if err := a.fillTemp(tmp, data); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("%w: %w", ErrPersist, err)
	}
	if err := os.Rename(tmp.Name(), a.path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("%w: %w", ErrPersist, err)
	}
	if err := syncDir(dir); err != nil {
		// The rename happened; only its durability across a power loss
		// is in doubt.
		a.log.Warn("credentials file written, but its directory could not be flushed", "path", a.path, "err", err)
	}
	return nil
}

// fillTemp writes data to the temporary file tmp (os.CreateTemp makes it
// 0600), then
// flushes and closes it.
func (a *Auth) fillTemp(tmp *os.File, data []byte) error {
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	return a.syncFile(tmp)
}

// syncDir flushes directory dir, making a rename in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
