package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/logx"
	"github.com/telehub/telehub/internal/metrics"
	"github.com/telehub/telehub/internal/stopper"
	"github.com/telehub/telehub/internal/topic"
	"github.com/telehub/telehub/storage"
)

// Defaults of Config.
const (
	DefaultBatch          = 256
	DefaultPublishTimeout = 10 * time.Second
	DefaultRetry          = time.Second
	DefaultRemoveInterval = time.Second
)

// Errors of New, Attach and Start.
var (
	ErrInvalidConfig = errors.New("cluster: invalid config")
	ErrNotAttached   = errors.New("cluster: Start before Attach")
	ErrStarted       = errors.New("cluster: started already")
)

// Store is what a cluster needs from storage (*storage.Store): the outbox
// to forward, the writer to remove what was forwarded, the ids.
type Store interface {
	Outbox(after uint64, limit int) ([]storage.OutboxEntry, error)
	Submit(w *bridge.Write) error
	IDs() storage.IDCodec
}

// Ingester stores peer messages and the presence changes the cluster
// decides itself (*bridge.Bridge).
type Ingester interface {
	Telemetry(in bridge.Input, p bridge.Payload, done func(bridge.Result)) error
	Presence(device string, p bridge.Presence, at time.Time, done func(bridge.Result)) error
	PeerPresence(device string, p bridge.Presence, at time.Time, o *bridge.Origin, done func(bridge.Result)) error
}

// Broker publishes to the cluster's broker (*devices.External).
type Broker interface {
	Connected() bool
	PublishPeers(topic string, retained bool, payload []byte) paho.Token
}

// Local says whether a device is online through this hub itself, and
// states again the presence of the devices online through it
// (*presence.Tracker).
type Local interface {
	Session(device string) (session uint64, online bool)
	// Restate submits again the online event of every device online over
	// transport, in order with the device's other changes; it returns how
	// many it submitted.
	Restate(transport string) int
}

// Links are the parts a cluster works with that are built after it.
type Links struct {
	Bridge Ingester
	Broker Broker
	Local  Local
	// Commands applies peers' command changes; nil: they are acknowledged
	// and not stored.
	Commands PeerCommands
}

// Config configures a Cluster.
type Config struct {
	// Name is the cluster's name, Node this hub's node id (device id
	// rule). Required.
	Name, Node string
	// Store holds the outbox. Required.
	Store Store
	// Batch is the most outbox messages published before waiting for the
	// broker's acknowledgements. Default 256.
	Batch int
	// PublishTimeout bounds the wait for the broker's acknowledgements of
	// one batch. Default 10s.
	PublishTimeout time.Duration
	// Retry is the wait before forwarding again after a failure. Default 1s.
	Retry time.Duration
	// RemoveInterval is the least time between two removals of forwarded
	// messages from the outbox. A removal is a write of its own, so that
	// removing after every batch would cost the hub a commit per batch;
	// what the broker acknowledged since the last removal is forwarded
	// again after a restart (the peers store it once). Default 1s.
	RemoveInterval time.Duration
	// Logger receives the cluster's logs. Default: discard.
	Logger *slog.Logger
	// Metrics receives the cluster metrics. Default a private set.
	Metrics *metrics.Metrics
	// Now is the clock of replication lag and presence changes. Default
	// time.Now.
	Now func() time.Time
}

// Cluster forwards what only this hub sees to its peers and ingests what
// they forward (see the package doc).
type Cluster struct {
	cfg    Config
	topics topics
	ids    storage.IDCodec
	log    *slog.Logger
	met    metrics.Cluster
	links  Links

	peers   peerMap
	catchup catchup
	fw      forwardState // the forwarder goroutine's own

	wake     chan struct{} // a commit or a connection: forward
	rejoined atomic.Bool   // the peers saw the will: restate presence
	stop     *stopper.Stopper

	mu      sync.Mutex
	started bool
}

// New validates cfg and builds a cluster; Attach and Start run it.
func New(cfg Config) (*Cluster, error) {
	switch {
	case !topic.ValidName(cfg.Name):
		return nil, fmt.Errorf("%w: cluster name %q (%s)", ErrInvalidConfig, cfg.Name, topic.NameRule)
	case !topic.ValidName(cfg.Node):
		return nil, fmt.Errorf("%w: node id %q (%s)", ErrInvalidConfig, cfg.Node, topic.NameRule)
	case cfg.Store == nil:
		return nil, fmt.Errorf("%w: Store is required", ErrInvalidConfig)
	case cfg.Batch < 0 || cfg.PublishTimeout < 0 || cfg.Retry < 0 || cfg.RemoveInterval < 0:
		return nil, fmt.Errorf("%w: negative limit", ErrInvalidConfig)
	}
	cfg.Batch = cmp.Or(cfg.Batch, DefaultBatch)
	cfg.PublishTimeout = cmp.Or(cfg.PublishTimeout, DefaultPublishTimeout)
	cfg.Retry = cmp.Or(cfg.Retry, DefaultRetry)
	cfg.RemoveInterval = cmp.Or(cfg.RemoveInterval, DefaultRemoveInterval)
	cfg.Logger = logx.Or(cfg.Logger)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := metrics.OrNew(cfg.Metrics)
	c := &Cluster{
		cfg:    cfg,
		topics: newTopics(cfg.Name),
		ids:    cfg.Store.IDs(),
		log:    cfg.Logger.With("cluster", cfg.Name, "node", cfg.Node),
		met:    m.Cluster,
		peers:  peerMap{via: make(map[string]peerDevice)},
		wake:   make(chan struct{}, 1),
		stop:   stopper.New(),
	}
	c.catchup.init(m.Cluster)
	return c, nil
}

// Attach links the cluster to the bridge, the broker client and the
// liveness tracker; call it once, before Start.
func (c *Cluster) Attach(l Links) { c.links = l }

// Node returns this hub's node id.
func (c *Cluster) Node() string { return c.cfg.Node }

// Start starts the forwarder goroutine.
func (c *Cluster) Start(context.Context) error {
	if c.links.Bridge == nil || c.links.Broker == nil || c.links.Local == nil {
		return ErrNotAttached
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started || c.stop.Stopping() {
		return ErrStarted
	}
	c.started = true
	c.stop.Add(1)
	go c.run()
	return nil
}

// Shutdown stops the forwarder; what it had not forwarded stays in the
// outbox for the next start. Then, when connected, it says "offline" on
// the hub's topic as its will would (a clean disconnect sends no will), so
// that the peers mark the devices connected through it offline. It
// returns ctx's error when ctx ends first.
func (c *Cluster) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	first := c.stop.Stop()
	c.mu.Unlock()
	if err := c.stop.Wait(ctx); err != nil {
		return fmt.Errorf("cluster shutdown: %w", err)
	}
	if first && c.links.Broker != nil && c.links.Broker.Connected() {
		return c.sayOffline(ctx)
	}
	return nil
}

// sayOffline publishes the hub's "offline" and waits for the broker's
// acknowledgement or ctx.
func (c *Cluster) sayOffline(ctx context.Context) error {
	tok := c.links.Broker.PublishPeers(c.topics.hub(c.cfg.Node), true, []byte(hubOffline))
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("cluster shutdown: say offline: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cluster shutdown: say offline: %w", ctx.Err())
	}
}

// Wake tells the forwarder that a commit happened; it never blocks. The
// hub calls it from the store's OnCommit.
func (c *Cluster) Wake() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Filters are the subscriptions the broker client makes besides the
// device topics: every peer's messages and this hub's sync markers.
func (c *Cluster) Filters() map[string]byte { return c.topics.filters(c.cfg.Node) }

// Will is the broker client's will: retained "offline" on the hub's
// topic, so that the peers mark the devices connected through it offline
// when it dies.
func (c *Cluster) Will() (topic string, payload []byte) {
	return c.topics.hub(c.cfg.Node), []byte(hubOffline)
}

// Connected is called by the broker client after each connection, once
// subscribed: catch-up starts again, and the forwarder announces the hub,
// publishes the sync marker and forwards its outbox.
func (c *Cluster) Connected() {
	c.catchup.connect()
	c.Wake()
}

// Rejoined is called by the broker client when the connection the hub
// forwards on is back after it was lost: the broker sent the will (as a
// rule; a peer that got none stores the online events as repeats), and
// the peers marked the WebSocket devices connected here offline. The
// forwarder then has their presence stated again (Local.Restate): each
// is a presence write of its own, kept in the outbox and forwarded in id
// order after what was committed before it, so that a peer stores it
// (its origin id is above every one of the device's it stored) and no
// earlier message of the device is overtaken.
func (c *Cluster) Rejoined() {
	c.rejoined.Store(true)
	c.Wake()
}

// Ready returns nil once the hub has stored what the broker queued for it
// up to its last connection; otherwise why not.
func (c *Cluster) Ready() error { return c.catchup.ready() }

// Forwarder returns the bridge's Forwarder: it makes the outbox messages
// of this hub's WebSocket readings and presence changes.
func (c *Cluster) Forwarder() bridge.Forwarder { return forwardRule{c} }
