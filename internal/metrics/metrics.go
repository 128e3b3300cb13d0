// Package metrics holds telehub's Prometheus collectors on a registry of its
// own. Every component takes a *Metrics in its config; a nil one means a
// fresh, private set (tests use that). No device, client or topic id is ever
// a label value: labels are bounded enums (transport, kind, reason).
package metrics

import (
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is the set of telehub's collectors. All fields are safe for
// concurrent use.
type Metrics struct {
	Registry *prometheus.Registry

	// Devices and watchers currently connected, by transport
	// (devices: ws, mqtt; watchers: sse, ws).
	DevicesConnected  *prometheus.GaugeVec
	WatchersConnected *prometheus.GaugeVec

	// EventsIngested counts events accepted by the bridge, by kind
	// (telemetry, presence, error); EventsStored those committed.
	EventsIngested *prometheus.CounterVec
	EventsStored   prometheus.Counter
	// Duplicates counts device messages acknowledged but not stored again
	// because their seq was not above the last stored one of their epoch.
	Duplicates prometheus.Counter
	// SeqRestarts counts device seq epoch changes: a new boot, a lower seq
	// with a later ts, or a seq jump too large for one counter.
	SeqRestarts prometheus.Counter
	// SeqFills counts readings a peer hub forwarded that were stored below
	// their epoch's last seq: the device had moved on to this hub before
	// its first hub forwarded them.
	SeqFills prometheus.Counter
	// SeqRangeMerges counts merges of a device's stored seq ranges over
	// their bound: the seqs between the two merged ranges count as stored,
	// so a peer's late reading among them is refused as a duplicate.
	SeqRangeMerges prometheus.Counter
	// Rejected counts rejected device payloads by reason (wire code).
	Rejected *prometheus.CounterVec
	// ErrorsSuppressed counts error events and answers not sent because of
	// the per-device error rate limit.
	ErrorsSuppressed prometheus.Counter
	// Throttled counts device messages slowed down (read later) by the
	// per-device message rate limit.
	Throttled prometheus.Counter

	// EventsDelivered counts events written to watchers, by transport.
	EventsDelivered *prometheus.CounterVec
	// SlowWatchers counts watchers disconnected for not keeping up.
	SlowWatchers *prometheus.CounterVec

	// Group commit.
	CommitBatch    prometheus.Histogram // writes per transaction
	CommitDuration prometheus.Histogram // seconds per transaction, fsync included
	// FanoutLatency is the time from the hub receiving a reading to its
	// event being handed to the watchers.
	FanoutLatency prometheus.Histogram

	// Storage.
	StorageBytes   prometheus.Gauge
	RetainedEvents prometheus.Gauge

	// Presence changes by reason.
	PresenceChanges *prometheus.CounterVec

	// MQTT: external broker connection state (1 connected, 0 not) and
	// messages the embedded broker dropped (slow clients, limits, expiry).
	BrokerConnected prometheus.Gauge
	// Cluster: the collectors of a hub in a cluster of replicas.
	Cluster     Cluster
	MQTTDropped prometheus.Counter
	// MQTTRefused counts connections the embedded broker refused because
	// their source address held all its slots.
	MQTTRefused prometheus.Counter

	// Commands to devices: created, ended by final state (succeeded,
	// failed, expired, canceled), and the time from creation to the
	// device's confirmation of receipt.
	CommandsCreated  prometheus.Counter
	CommandsFinished *prometheus.CounterVec
	CommandDelivery  prometheus.Histogram
}

// New returns a fresh set of collectors registered on a new registry, with
// the Go, process and build-info collectors added. version is reported in
// telehub_build_info.
func New(version string) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		DevicesConnected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "telehub_devices_connected", Help: "Devices currently connected, by transport.",
		}, []string{"transport"}),
		WatchersConnected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "telehub_watchers_connected", Help: "Watchers currently connected, by transport.",
		}, []string{"transport"}),
		EventsIngested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telehub_events_ingested_total", Help: "Events accepted by the bridge, by kind.",
		}, []string{"kind"}),
		EventsStored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telehub_events_stored_total", Help: "Events durably committed to storage.",
		}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telehub_duplicates_total", Help: "Device messages acknowledged but not stored again (seq already stored in its epoch).",
		}),
		SeqRestarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telehub_seq_restarts_total", Help: "Device seq epoch changes (device reboots, seq counter restarts or jumps).",
		}),
		SeqFills: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telehub_seq_fills_total", Help: "Readings forwarded by a peer hub and stored below their epoch's last seq.",
		}),
		SeqRangeMerges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telehub_seq_range_merges_total", Help: "Merges of a device's stored seq ranges over their bound.",
		}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telehub_payloads_rejected_total", Help: "Device payloads rejected, by reason.",
		}, []string{"reason"}),
		ErrorsSuppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telehub_errors_suppressed_total", Help: "Error events and answers suppressed by the per-device error rate limit.",
		}),
		Throttled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telehub_messages_throttled_total", Help: "Device messages slowed down by the per-device message rate limit.",
		}),
		EventsDelivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telehub_events_delivered_total", Help: "Events written to watchers, by transport.",
		}, []string{"transport"}),
		SlowWatchers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telehub_slow_watcher_disconnects_total", Help: "Watchers disconnected for not keeping up, by transport.",
		}, []string{"transport"}),
		CommitBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "telehub_commit_batch_writes", Help: "Device messages per group-commit transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		CommitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "telehub_commit_duration_seconds", Help: "Duration of one group-commit transaction, fsync included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 3, 10),
		}),
		FanoutLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "telehub_ingest_to_fanout_seconds", Help: "Time from receiving a reading to handing its event to the watchers.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 3, 10),
		}),
		StorageBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "telehub_storage_size_bytes", Help: "Size of the storage file.",
		}),
		RetainedEvents: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "telehub_retained_events", Help: "Events currently retained for replay.",
		}),
		PresenceChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telehub_presence_changes_total", Help: "Device presence changes, by reason.",
		}, []string{"reason"}),
		BrokerConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "telehub_external_broker_connected", Help: "1 when connected to the external MQTT broker, else 0.",
		}),
		MQTTDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telehub_mqtt_dropped_total", Help: "Messages the embedded broker dropped: for a client that did not keep up, a session or retained store at its limit, or a session that expired or was dropped.",
		}),
		MQTTRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telehub_mqtt_connections_refused_total", Help: "Connections the embedded broker refused because their source address was at its connection limit.",
		}),
		CommandsCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telehub_commands_created_total", Help: "Commands to devices created.",
		}),
		CommandsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telehub_commands_finished_total", Help: "Commands to devices that reached a final state, by state.",
		}, []string{"state"}),
		CommandDelivery: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "telehub_command_delivery_seconds", Help: "Time from creating a command to the device confirming its receipt.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "telehub_build_info", Help: "Build information; the value is always 1.",
	}, []string{"version", "goversion"})
	goVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
	}
	buildInfo.WithLabelValues(version, goVersion).Set(1)

	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo,
		m.DevicesConnected, m.WatchersConnected, m.EventsIngested, m.EventsStored,
		m.Duplicates, m.SeqRestarts, m.SeqFills, m.SeqRangeMerges, m.Rejected, m.ErrorsSuppressed, m.Throttled, m.EventsDelivered, m.SlowWatchers,
		m.CommitBatch, m.CommitDuration, m.FanoutLatency, m.StorageBytes, m.RetainedEvents,
		m.PresenceChanges, m.BrokerConnected, m.MQTTDropped, m.MQTTRefused,
		m.CommandsCreated, m.CommandsFinished, m.CommandDelivery,
	)
	m.Cluster = newCluster()
	m.Registry.MustRegister(m.Cluster.collectors()...)
	return m
}

// OrNew returns m, or a fresh private set when m is nil.
func OrNew(m *Metrics) *Metrics {
	if m == nil {
		return New("dev")
	}
	return m
}
