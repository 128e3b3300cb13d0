package hub

import (
	"fmt"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/cluster"
	"github.com/telehub/telehub/devices"
	"github.com/telehub/telehub/storage"
)

// buildCluster builds the cluster of replicas when --cluster is set; the
// bridge, the broker client and liveness are attached once built.
func (h *Hub) buildCluster() error {
	if h.cfg.Cluster == "" {
		return nil
	}
	var err error
	h.cluster, err = cluster.New(cluster.Config{
		Name:    h.cfg.Cluster,
		Node:    h.nodeID(),
		Store:   h.store,
		Logger:  h.log.With("component", "cluster"),
		Metrics: h.metrics,
	})
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// attachCluster links the cluster to the parts built after it.
func (h *Hub) attachCluster() {
	if h.cluster != nil && h.external != nil {
		h.cluster.Attach(cluster.Links{Bridge: h.bridge, Broker: h.external, Local: h.liveness, Commands: h.commands})
	}
}

// committed is the store's OnCommit: the fan-out to watchers, and the
// cluster's forwarder woken.
func (h *Hub) committed(recs []storage.Record) {
	h.fanout.Publish(recs)
	if h.cluster != nil {
		h.cluster.Wake()
	}
}

// clusterReady is the cluster's part of /readyz: caught up with what the
// broker queued for this hub.
func (h *Hub) clusterReady() error {
	if h.cluster == nil {
		return nil
	}
	return h.cluster.Ready()
}

// peers is the broker client's Peers: the cluster, or nil (an untyped nil,
// so that the client sees none).
func (h *Hub) peers() devices.Peers {
	if h.cluster == nil {
		return nil
	}
	return h.cluster
}

// forwardCommand is the store's ForwardCommand: in a cluster, every
// change of a command this hub makes goes to its peers.
func (h *Hub) forwardCommand() func(*bridge.Command) []byte {
	if h.cfg.Cluster == "" {
		return nil
	}
	return cluster.CommandBody
}
