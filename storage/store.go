package storage

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/logx"
	"github.com/telehub/telehub/internal/metrics"
)

// Errors of the store.
var (
	// ErrClosed: Close began, so the store accepts no more writes; once
	// Close returned, reads fail with it too.
	ErrClosed = errors.New("storage closed")
	// ErrNotFound: no device with that id is recorded.
	ErrNotFound = errors.New("device not found")
	// ErrInvalidConfig: a Config field is missing or out of range.
	ErrInvalidConfig = errors.New("invalid storage config")
	// ErrInvalidWrite: Submit got a nil write, a write without a device, or
	// an event without a topic.
	ErrInvalidWrite = errors.New("invalid write")
	// ErrCorrupt: the data file holds something this version of telehub
	// cannot decode.
	ErrCorrupt = errors.New("storage data malformed")
)

// Defaults of Config.
const (
	DefaultMaxEvents    = 1_000_000
	DefaultMaxAge       = 24 * time.Hour
	DefaultQueueSize    = 8192
	DefaultMaxBatch     = 4096
	DefaultOpenTimeout  = 5 * time.Second
	DefaultTrimInterval = time.Second
)

// Config configures a Store. Zero values mean the documented defaults.
type Config struct {
	// Path is the bbolt file; its directory is created. Required.
	Path string
	// NoFsync skips the fsync of each commit: faster, but a crash can lose
	// the last acknowledged writes. Default false: every commit is durable.
	NoFsync bool
	// MaxEvents bounds the retained events by count. Default 1 000 000.
	MaxEvents int
	// MaxAge bounds the retained events by age (Record.Time). Default 24h.
	MaxAge time.Duration
	// CommandRetention is how long a command in a final state (succeeded,
	// failed, expired, canceled) is kept after its last change; then it
	// is deleted, in bounded steps within the writer's transactions. Its
	// events stay in the log under MaxAge and MaxEvents. Default MaxAge.
	CommandRetention time.Duration
	// QueueSize is how many writes may wait for the writer before Submit
	// blocks. Default 8192.
	QueueSize int
	// MaxBatch is the most writes committed in one transaction. Default 4096.
	MaxBatch int
	// MaxBytes caps the size of the data file (bbolt MaxSize): a commit that
	// would grow it further fails cleanly instead of filling the disk.
	// Default 0: no cap.
	MaxBytes int
	// OpenTimeout is how long Open waits for the file lock held by another
	// process. Default 5s.
	OpenTimeout time.Duration
	// TrimInterval is how often the idle writer wakes to apply retention.
	// Default 1s.
	TrimInterval time.Duration
	// Synced, when set, is called on the writer goroutine after each
	// successful commit, once the commit returned from bbolt with its fsync
	// done (with NoFsync, once it returned), before OnCommit and any Done,
	// with the last committed event id. It marks the moment the batch became
	// durable: nothing derived from the batch (a fan-out, an ack) may leave
	// the hub before it. It must not block. Default nil.
	Synced func(lastID uint64)
	// OnCommit, when set, is called on the writer goroutine after each
	// successful commit that stored events, before any Done, with the
	// batch's records in id order. It must not block. The slice is reused
	// after it returns; the records' Data is not.
	OnCommit func([]Record)
	// Origins, when set (a hub in a cluster), gives records read or handed
	// to OnCommit "origin":"{node}:{id}" in their data, unless a peer
	// hub's origin is there already; Node is the node, default the store
	// identity. Default false: data as stored.
	Origins bool
	Node    string
	// Logger receives the store's logs. Default: discard.
	Logger *slog.Logger
	// Metrics receives the store's metrics. Default a private set.
	Metrics *metrics.Metrics
	// Now is the clock used for retention by age and for writes without a
	// Seen time. Default time.Now.
	Now func() time.Time
	// Cluster makes the store's ids those of a hub in a cluster: each
	// carries its event's Record.Time, and an id that a peer hub minted is
	// resumed from its time minus ResumeMargin (see IDCodec.InCluster).
	// Default false: a single hub's ids, without a time.
	Cluster bool
	// ForwardCommand, when set (in a cluster), makes the message kept in
	// the outbox with each change of a command that this hub makes, to be
	// forwarded to the peer hubs; nil means none. A change applied from a
	// peer's copy (bridge.CommandOp.Replica) is never forwarded again.
	ForwardCommand func(c *bridge.Command) []byte
	// ResumeMargin is how long before a peer's id's time a resume from it
	// starts, in cluster mode (the hub's --cluster-resume-margin). Zero
	// means no margin.
	ResumeMargin time.Duration
}

// withDefaults validates c and returns it with defaults filled.
func (c Config) withDefaults() (Config, error) {
	if c.Path == "" {
		return c, fmt.Errorf("%w: Path is required", ErrInvalidConfig)
	}
	if c.MaxEvents < 0 || c.MaxAge < 0 || c.CommandRetention < 0 || c.QueueSize < 0 || c.MaxBatch < 0 ||
		c.MaxBytes < 0 || c.OpenTimeout < 0 || c.TrimInterval < 0 || c.ResumeMargin < 0 {
		return c, fmt.Errorf("%w: negative limit", ErrInvalidConfig)
	}
	c.MaxEvents = orDefault(c.MaxEvents, DefaultMaxEvents)
	c.MaxAge = orDefault(c.MaxAge, DefaultMaxAge)
	c.CommandRetention = orDefault(c.CommandRetention, c.MaxAge)
	c.QueueSize = orDefault(c.QueueSize, DefaultQueueSize)
	c.MaxBatch = orDefault(c.MaxBatch, DefaultMaxBatch)
	c.OpenTimeout = orDefault(c.OpenTimeout, DefaultOpenTimeout)
	c.TrimInterval = orDefault(c.TrimInterval, DefaultTrimInterval)
	c.Logger = logx.Or(c.Logger)
	c.Metrics = metrics.OrNew(c.Metrics)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Store is telehub's durable event log, latest state and device registry
// on one bbolt file, written by a single group-commit goroutine.
type Store struct {
	cfg Config
	log *slog.Logger
	met *metrics.Metrics
	db  *bolt.DB
	ids IDCodec
	// node is the origin node of the hub's own records; "" outside a
	// cluster (Config.Origins).
	node string

	queue   chan *bridge.Write
	deletes chan deleteReq // DeleteDevice requests, unbuffered
	// mu guards closed: Submit holds it shared while it sends, so that once
	// Close has set closed under the exclusive lock no send is in flight.
	mu      sync.RWMutex
	closed  bool
	closing chan struct{} // closed when Close begins: wakes blocked Submits
	drain   chan struct{} // closed once no Submit can send: the writer flushes and exits
	done    chan struct{} // closed when the writer goroutine has exited

	closeOnce sync.Once
	closeErr  error

	lastID atomic.Uint64               // last committed id, 0 = none
	oldest atomic.Pointer[oldestEvent] // oldest retained event; id 0 = none retained

	writeErr atomic.Pointer[error] // see WriteErr; nil while commits succeed
	health   writeHealth           // owned by the writer goroutine

	w writer // owned by the writer goroutine
}

// Open opens (or creates) the store file, creates its buckets and identity
// on first use, and starts the writer goroutine: the Store accepts writes
// when Open returns. Close stops the writer and closes the file; its error
// must be checked, as it is the last chance to learn that the file could
// not be closed cleanly.
func Open(cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	db, err := openDB(cfg)
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg:     cfg,
		log:     cfg.Logger,
		met:     cfg.Metrics,
		db:      db,
		queue:   make(chan *bridge.Write, cfg.QueueSize),
		deletes: make(chan deleteReq),
		closing: make(chan struct{}),
		drain:   make(chan struct{}),
		done:    make(chan struct{}),
		w:       newWriter(),
	}
	if err := s.load(); err != nil {
		_ = db.Close() // the load error is the one to report
		return nil, err
	}
	if cfg.Origins {
		s.node = cmp.Or(cfg.Node, s.ids.Identity())
	}
	s.logOpen()
	go s.run()
	return s, nil
}

// openDB creates the directory of cfg.Path and opens the bbolt file.
func openDB(cfg Config) (*bolt.DB, error) {
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o750); err != nil {
		return nil, fmt.Errorf("storage: create data directory: %w", err)
	}
	if err := checkBeforeOpen(cfg); err != nil {
		return nil, err
	}
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{
		Timeout:        cfg.OpenTimeout,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		MaxSize:        cfg.MaxBytes,
		NoSync:         cfg.NoFsync,
	})
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", cfg.Path, err)
	}
	return db, nil
}

func (s *Store) logOpen() {
	oldest, _ := s.OldestID()
	s.log.Info("storage open", "path", s.cfg.Path, "identity", s.ids.Identity(),
		"last_id", s.LastID(), "oldest_id", oldest)
	if s.cfg.NoFsync {
		s.log.Warn("fsync disabled: a crash can lose acknowledged readings", "path", s.cfg.Path)
	}
}

// newIdentity returns a random store identity of 12 hex digits.
func newIdentity() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("storage: make identity: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Submit queues w for the next group commit. It blocks while the queue is
// full, and returns ErrClosed once Close began. When Submit returns nil,
// w.Done (if set) is called exactly once on the writer goroutine; otherwise
// it is never called. w and its events must not change until then.
func (s *Store) Submit(w *bridge.Write) error {
	if err := validWrite(w); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	select {
	case s.queue <- w:
		return nil
	case <-s.closing:
		return ErrClosed
	}
}

// validWrite rejects writes the writer could not store.
func validWrite(w *bridge.Write) error {
	if w == nil {
		return fmt.Errorf("%w: nil", ErrInvalidWrite)
	}
	if w.ForwardedUpTo != 0 {
		if w.Device != "" || len(w.Events) > 0 || w.Command != nil || w.Presence != nil {
			return fmt.Errorf("%w: a ForwardedUpTo write carries nothing else", ErrInvalidWrite)
		}
		return nil
	}
	if w.Device == "" {
		return fmt.Errorf("%w: no device", ErrInvalidWrite)
	}
	for i := range w.Events {
		if w.Events[i].Topic == "" {
			return fmt.Errorf("%w: event %d of device %q has no topic", ErrInvalidWrite, i, w.Device)
		}
	}
	return nil
}

// Close stops accepting writes, commits every write already queued (their
// Done is called), stops the writer and closes the file. It is idempotent;
// later calls return the first call's result. It must not be called from
// OnCommit or a Done.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.drain)
		<-s.done
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("storage: close %s: %w", s.cfg.Path, err)
		}
	})
	return s.closeErr
}

// IDs returns the codec of this store's event ids.
func (s *Store) IDs() IDCodec { return s.ids }

// LastID returns the id of the last committed event, 0 when none was ever
// committed. Ids of trimmed events count: it never goes down.
func (s *Store) LastID() uint64 { return s.lastID.Load() }

// OldestID returns the id of the oldest retained event, and false when no
// event is retained.
func (s *Store) OldestID() (uint64, bool) {
	id, _, ok := s.OldestEvent()
	return id, ok
}

// oldestEvent is the oldest retained event as readers see it: id 0 when
// none is retained.
type oldestEvent struct {
	id uint64
	ms int64 // Record.Time, unix ms
}

// OldestEvent returns the id of the oldest retained event and its
// Record.Time, and false when no event is retained.
func (s *Store) OldestEvent() (uint64, time.Time, bool) {
	o := s.oldest.Load()
	if o == nil || o.id == 0 {
		return 0, time.Time{}, false
	}
	return o.id, time.UnixMilli(o.ms).UTC(), true
}

// viewErr maps the error of a read transaction.
func viewErr(op string, err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return fmt.Errorf("storage: %s: %w", op, err)
}
