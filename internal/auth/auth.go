package auth

import (
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/telehub/telehub/internal/logx"
	"github.com/telehub/telehub/internal/topic"
)

// FileName is the name of the credentials file inside the data directory.
const FileName = "credentials.json"

// Where a credential comes from.
const (
	// SourceConfig: the configuration; read-only for the admin API.
	SourceConfig = "config"
	// SourceAPI: issued through the admin API and kept in the credentials
	// file.
	SourceAPI = "api"
)

// Config configures an Auth.
type Config struct {
	// Path is the credentials file holding what the admin API issues,
	// usually <data-dir>/credentials.json. Required. A missing file means
	// no issued credentials yet; it is created on the first change.
	Path string
	// AdminToken is the admin token: a plain token or "sha256:<hex>" (see
	// ParseSecret). Default "": no admin, the admin API refuses everyone.
	AdminToken string
	// Devices maps device ids to their token, plain or "sha256:<hex>".
	// Default none.
	Devices map[string]string
	// Watchers are watcher credentials. Default none.
	Watchers []WatcherConfig
	// Logger receives notes about the credentials file and an audit line
	// for every change (never a token). Default: discard.
	Logger *slog.Logger
}

// WatcherConfig is a watcher credential given in the configuration.
type WatcherConfig struct {
	// Name identifies the credential (device id rules). Required, unique.
	Name string
	// Token is the watcher's token, plain or "sha256:<hex>". Required,
	// unique among watchers.
	Token string
	// Topics are the scopes: topic filters the watcher may watch within.
	// At least one, at most MaxScopes.
	Topics []string
	// Commands is the commands scope: device-id patterns (a device id,
	// "+" or "#"; see ParseCommandScopes) of the devices the token may
	// command. Default none: the token may command no device.
	Commands []string
}

// DeviceInfo describes a device credential, without its token.
type DeviceInfo struct {
	Device  string
	Source  string    // SourceConfig or SourceAPI
	Created time.Time // when it was issued; zero for SourceConfig
}

// WatcherInfo describes a watcher credential, without its token.
type WatcherInfo struct {
	Name   string
	Topics []string
	// Commands is the commands scope's device-id patterns; empty when
	// none.
	Commands []string
	Source   string    // SourceConfig or SourceAPI
	Created  time.Time // when it was issued; zero for SourceConfig
}

// device is a device credential.
type device struct {
	hash    digest
	source  string
	created time.Time
}

// watcher is a watcher credential. Never modified once published.
type watcher struct {
	name   string
	hash   digest
	scopes []topic.Filter
	// commands holds the commands scope as filters commands/{pattern}.
	commands []topic.Filter
	source   string
	created  time.Time
}

// snapshot is one immutable set of credentials. Changes build a new one.
type snapshot struct {
	admin    *digest
	devices  map[string]device
	watchers map[string]*watcher // by name
	byHash   map[digest]*watcher
}

// Auth checks and manages credentials. See the package documentation.
type Auth struct {
	path string
	log  *slog.Logger
	rand io.Reader // source of issued tokens: crypto/rand.Reader
	now  func() time.Time

	cur atomic.Pointer[snapshot]
	// mu serializes changes: build, write the file, publish.
	mu sync.Mutex
	// syncFile flushes the temporary file before its rename; a field so
	// that tests can make persistence fail.
	syncFile func(f fileSyncer) error
}

// New returns an Auth holding the credentials of cfg and those of the
// credentials file at cfg.Path. An entry of the file for a device or
// watcher that the configuration also defines is ignored (the
// configuration wins) and dropped at the next change.
func New(cfg Config) (*Auth, error) {
	if cfg.Path == "" {
		return nil, fmt.Errorf("%w: Path is required", ErrInvalidConfig)
	}
	cfg.Logger = logx.Or(cfg.Logger)
	snap, err := configSnapshot(cfg)
	if err != nil {
		return nil, err
	}
	a := &Auth{path: cfg.Path, log: cfg.Logger, rand: rand.Reader, now: time.Now, syncFile: syncAndClose}
	if err := a.loadFile(snap); err != nil {
		return nil, err
	}
	a.cur.Store(snap)
	return a, nil
}

// Check validates the credentials of cfg as New does, without looking at
// the credentials file (Path may be empty). Errors wrap ErrInvalidConfig
// and, where it applies, ErrBadToken, ErrBadName or ErrBadScope.
func (cfg Config) Check() error {
	_, err := configSnapshot(cfg)
	return err
}

// configSnapshot builds the snapshot of the credentials cfg defines.
func configSnapshot(cfg Config) (*snapshot, error) {
	snap := &snapshot{
		devices:  make(map[string]device, len(cfg.Devices)),
		watchers: make(map[string]*watcher, len(cfg.Watchers)),
		byHash:   make(map[digest]*watcher, len(cfg.Watchers)),
	}
	if cfg.AdminToken != "" {
		d, err := parseSecret(cfg.AdminToken)
		if err != nil {
			return nil, fmt.Errorf("%w: admin token: %w", ErrInvalidConfig, err)
		}
		snap.admin = &d
	}
	for id, token := range cfg.Devices {
		if err := validName("device id", id); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		d, err := parseSecret(token)
		if err != nil {
			return nil, fmt.Errorf("%w: token of device %q: %w", ErrInvalidConfig, id, err)
		}
		snap.devices[id] = device{hash: d, source: SourceConfig}
	}
	for _, wc := range cfg.Watchers {
		w, err := configWatcher(wc)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		if err := snap.addWatcher(w); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	return snap, nil
}

func configWatcher(wc WatcherConfig) (*watcher, error) {
	if err := validName("watcher name", wc.Name); err != nil {
		return nil, err
	}
	d, err := parseSecret(wc.Token)
	if err != nil {
		return nil, fmt.Errorf("token of watcher %q: %w", wc.Name, err)
	}
	scopes, err := ParseScopes(wc.Topics)
	if err != nil {
		return nil, fmt.Errorf("watcher %q: %w", wc.Name, err)
	}
	commands, err := ParseCommandScopes(wc.Commands)
	if err != nil {
		return nil, fmt.Errorf("watcher %q: %w", wc.Name, err)
	}
	return &watcher{name: wc.Name, hash: d, scopes: scopes, commands: commands, source: SourceConfig}, nil
}

// addWatcher adds w to a snapshot under construction; names and tokens
// must be unique.
func (s *snapshot) addWatcher(w *watcher) error {
	if _, dup := s.watchers[w.name]; dup {
		return fmt.Errorf("watcher %q defined twice", w.name)
	}
	if other, dup := s.byHash[w.hash]; dup {
		return fmt.Errorf("watchers %q and %q have the same token", other.name, w.name)
	}
	s.watchers[w.name] = w
	s.byHash[w.hash] = w
	return nil
}

// clone returns a copy of s that a change may modify.
func (s *snapshot) clone() *snapshot {
	return &snapshot{
		admin:    s.admin,
		devices:  maps.Clone(s.devices),
		watchers: maps.Clone(s.watchers),
		byHash:   maps.Clone(s.byHash),
	}
}

// ParseScopes parses watcher scopes: one to MaxScopes topic filters.
// Errors wrap ErrBadScope.
func ParseScopes(topics []string) ([]topic.Filter, error) {
	switch {
	case len(topics) == 0:
		return nil, fmt.Errorf("%w: no topics: give at least one topic filter", ErrBadScope)
	case len(topics) > MaxScopes:
		return nil, fmt.Errorf("%w: %d topics, at most %d", ErrBadScope, len(topics), MaxScopes)
	}
	scopes := make([]topic.Filter, 0, len(topics))
	for _, t := range topics {
		f, err := topic.ParseFilter(t)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadScope, err)
		}
		scopes = append(scopes, f)
	}
	return scopes, nil
}

// validName checks a device id or watcher name against the naming rule of internal/topic.
func validName(what, name string) error {
	if topic.ValidDeviceID(name) != nil {
		return fmt.Errorf("%w: %s %.80q: want 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit", ErrBadName, what, name)
	}
	return nil
}

// Enabled reports whether any credential exists. Without any, telehub
// runs open (and on loopback only, unless --insecure).
func (a *Auth) Enabled() bool {
	s := a.cur.Load()
	return s.admin != nil || len(s.devices) > 0 || len(s.watchers) > 0
}

// Device reports whether token is the token of device id.
func (a *Auth) Device(id, token string) bool {
	if token == "" {
		return false
	}
	d, ok := a.cur.Load().devices[id]
	// Compare even without a credential, so that the time taken does not
	// depend on whether the device has one.
	return d.hash.equal(hashToken(token)) && ok
}

// Watcher returns the scopes of the watcher whose token this is; ok is
// false when it is no watcher's token. The slice is the caller's.
//
// The credential is found by the token's SHA-256 in a map: the lookup's
// timing depends on the hash, which tells nothing about the token.
func (a *Auth) Watcher(token string) (scopes []topic.Filter, ok bool) {
	w := a.watcherOf(token)
	if w == nil {
		return nil, false
	}
	return slices.Clone(w.scopes), true
}

// watcherOf returns the watcher credential of token, nil when there is
// none.
func (a *Auth) watcherOf(token string) *watcher {
	if token == "" {
		return nil
	}
	h := hashToken(token)
	w, ok := a.cur.Load().byHash[h]
	if !ok || !w.hash.equal(h) {
		return nil
	}
	return w
}

// Admin reports whether token is the admin token.
func (a *Auth) Admin(token string) bool {
	admin := a.cur.Load().admin
	return token != "" && admin != nil && admin.equal(hashToken(token))
}

// HasAdmin reports whether an admin token is configured.
func (a *Auth) HasAdmin() bool { return a.cur.Load().admin != nil }

// IssueDevice issues a new token for device id, replacing any token the
// admin API issued for it before, and returns it. The token is shown only
// here: only its hash is kept. Errors: ErrBadName, ErrConfigured,
// ErrPersist.
func (a *Auth) IssueDevice(id string) (string, error) {
	if err := validName("device id", id); err != nil {
		return "", err
	}
	token, hash, err := newToken(a.rand)
	if err != nil {
		return "", err
	}
	err = a.change(func(s *snapshot) error {
		if s.devices[id].source == SourceConfig {
			return fmt.Errorf("device %q: %w", id, ErrConfigured)
		}
		s.devices[id] = device{hash: hash, source: SourceAPI, created: a.created()}
		return nil
	})
	if err != nil {
		return "", err
	}
	a.log.Info("device token issued", "device", id)
	return token, nil
}

// RevokeDevice removes the token the admin API issued for device id: it
// cannot connect again. Closing its open connections is the caller's
// (the admin API does).
// Errors: ErrBadName, ErrNotFound, ErrConfigured, ErrPersist.
func (a *Auth) RevokeDevice(id string) error {
	if err := validName("device id", id); err != nil {
		return err
	}
	err := a.change(func(s *snapshot) error {
		switch d, ok := s.devices[id]; {
		case !ok:
			return fmt.Errorf("device %q: %w", id, ErrNotFound)
		case d.source == SourceConfig:
			return fmt.Errorf("device %q: %w", id, ErrConfigured)
		}
		delete(s.devices, id)
		return nil
	})
	if err == nil {
		a.log.Info("device token revoked", "device", id)
	}
	return err
}

// IssueWatcher issues a new watcher token named name, allowed to watch
// within scopes (see ParseScopes), and returns it. A watcher of that name
// issued before is replaced: its old token stops working. The token is
// shown only here. Errors: ErrBadName, ErrBadScope, ErrConfigured,
// ErrPersist.
func (a *Auth) IssueWatcher(name string, scopes []topic.Filter) (string, error) {
	return a.IssueCommander(name, scopes, nil)
}

// IssueCommander is IssueWatcher for a token that may also command the
// devices its commands scope covers (see ParseCommandScopes; none: no
// device).
func (a *Auth) IssueCommander(name string, scopes, commands []topic.Filter) (string, error) {
	if err := validName("watcher name", name); err != nil {
		return "", err
	}
	if err := checkScopes(scopes); err != nil {
		return "", err
	}
	if err := checkCommandScopes(commands); err != nil {
		return "", err
	}
	token, hash, err := newToken(a.rand)
	if err != nil {
		return "", err
	}
	w := &watcher{name: name, hash: hash, scopes: slices.Clone(scopes), commands: slices.Clone(commands),
		source: SourceAPI, created: a.created()}
	err = a.change(func(s *snapshot) error {
		if old, ok := s.watchers[name]; ok {
			if old.source == SourceConfig {
				return fmt.Errorf("watcher %q: %w", name, ErrConfigured)
			}
			delete(s.byHash, old.hash)
			delete(s.watchers, name)
		}
		return s.addWatcher(w)
	})
	if err != nil {
		return "", err
	}
	a.log.Info("watcher token issued", "watcher", name, "topics", filterStrings(scopes), "commands", commandPatterns(commands))
	return token, nil
}

// checkScopes checks scopes given as parsed filters.
func checkScopes(scopes []topic.Filter) error {
	switch {
	case len(scopes) == 0:
		return fmt.Errorf("%w: no topics: give at least one topic filter", ErrBadScope)
	case len(scopes) > MaxScopes:
		return fmt.Errorf("%w: %d topics, at most %d", ErrBadScope, len(scopes), MaxScopes)
	}
	for _, f := range scopes {
		if f.String() == "" {
			return fmt.Errorf("%w: empty topic filter", ErrBadScope)
		}
	}
	return nil
}

// RevokeWatcher removes the watcher credential name issued through the
// admin API. Ending the streams already open is the caller's (the admin
// API does). Errors: ErrBadName,
// ErrNotFound, ErrConfigured, ErrPersist.
func (a *Auth) RevokeWatcher(name string) error {
	if err := validName("watcher name", name); err != nil {
		return err
	}
	err := a.change(func(s *snapshot) error {
		w, ok := s.watchers[name]
		switch {
		case !ok:
			return fmt.Errorf("watcher %q: %w", name, ErrNotFound)
		case w.source == SourceConfig:
			return fmt.Errorf("watcher %q: %w", name, ErrConfigured)
		}
		delete(s.watchers, name)
		delete(s.byHash, w.hash)
		return nil
	})
	if err == nil {
		a.log.Info("watcher token revoked", "watcher", name)
	}
	return err
}

// change applies edit to a copy of the current credentials, writes the
// file, and publishes the copy. When edit or the write fails, nothing
// changes.
func (a *Auth) change(edit func(*snapshot) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	next := a.cur.Load().clone()
	if err := edit(next); err != nil {
		return err
	}
	if err := a.writeFile(next); err != nil {
		return err
	}
	a.cur.Store(next)
	return nil
}

func (a *Auth) created() time.Time { return a.now().UTC().Truncate(time.Second) }

// Devices lists the device credentials, by device id, without tokens.
func (a *Auth) Devices() []DeviceInfo {
	s := a.cur.Load()
	out := make([]DeviceInfo, 0, len(s.devices))
	for _, id := range slices.Sorted(maps.Keys(s.devices)) {
		d := s.devices[id]
		out = append(out, DeviceInfo{Device: id, Source: d.source, Created: d.created})
	}
	return out
}

// Watchers lists the watcher credentials, by name, without tokens.
func (a *Auth) Watchers() []WatcherInfo {
	s := a.cur.Load()
	out := make([]WatcherInfo, 0, len(s.watchers))
	for _, name := range slices.Sorted(maps.Keys(s.watchers)) {
		w := s.watchers[name]
		out = append(out, WatcherInfo{Name: name, Topics: filterStrings(w.scopes), Commands: commandPatterns(w.commands),
			Source: w.source, Created: w.created})
	}
	return out
}

func filterStrings(fs []topic.Filter) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.String()
	}
	return out
}
