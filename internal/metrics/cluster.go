package metrics

import "github.com/prometheus/client_golang/prometheus"

// Cluster holds the collectors of a hub in a cluster of replicas. Kind
// labels are "telemetry" and "presence".
type Cluster struct {
	// Forwarded counts messages this hub published to its peers and the
	// broker acknowledged, by kind.
	Forwarded *prometheus.CounterVec
	// Received counts peer messages stored by this hub, by kind; Skipped
	// those it acknowledged without storing, by why: "own" (its own
	// message back), "duplicate" (stored already), "stale" (an offline of
	// a device not online through that peer), "invalid" (a message that
	// can never be stored).
	Received *prometheus.CounterVec
	Skipped  *prometheus.CounterVec
	// ReplicationLag is the time from a peer's commit of a message to this
	// hub's commit of it.
	ReplicationLag prometheus.Histogram
	// ForwardBacklog is the number of messages waiting to be forwarded
	// that the forwarder last read (up to one batch).
	ForwardBacklog prometheus.Gauge
	// CatchupBacklog is the number of messages received since the last
	// connection to the broker while catching up with what the broker
	// queued; 0 once caught up. CaughtUp is 1 once caught up, else 0.
	CatchupBacklog prometheus.Gauge
	CaughtUp       prometheus.Gauge
}

func newCluster() Cluster {
	return Cluster{
		Forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telehub_cluster_forwarded_total", Help: "Messages published to the peer hubs and acknowledged by the broker, by kind.",
		}, []string{"kind"}),
		Received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telehub_cluster_received_total", Help: "Peer hub messages stored, by kind.",
		}, []string{"kind"}),
		Skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telehub_cluster_skipped_total", Help: "Peer hub messages acknowledged without storing, by reason (own, duplicate, stale, invalid).",
		}, []string{"reason"}),
		ReplicationLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "telehub_cluster_replication_lag_seconds",
			Help:    "Time from a peer hub's commit of a message to this hub's commit of it.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		ForwardBacklog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "telehub_cluster_forward_backlog", Help: "Messages waiting to be forwarded to the peer hubs, as last read (up to one batch).",
		}),
		CatchupBacklog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "telehub_cluster_catchup_backlog", Help: "Messages received while catching up with what the broker queued for this hub; 0 once caught up.",
		}),
		CaughtUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "telehub_cluster_caught_up", Help: "1 once the hub has stored what the broker queued for it while it was away, else 0.",
		}),
	}
}

func (c Cluster) collectors() []prometheus.Collector {
	return []prometheus.Collector{c.Forwarded, c.Received, c.Skipped, c.ReplicationLag, c.ForwardBacklog, c.CatchupBacklog, c.CaughtUp}
}
