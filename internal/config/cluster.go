package config

import (
	"time"

	"github.com/telehub/telehub/internal/topic"
)

// DefaultClusterResumeMargin is the default of --cluster-resume-margin.
const DefaultClusterResumeMargin = 10 * time.Second

// validateCluster reports through bad what is wrong with the cluster
// options: a cluster needs the external broker its hubs share, its name
// and the node id follow the device id rule (they become topic levels and
// a client id), and a shared subscription would give each replica only a
// part of the device traffic.
func (c Config) validateCluster(bad func(format string, args ...any)) {
	if c.ClusterResumeMargin < 0 {
		bad("cluster_resume_margin must not be negative, got %s", c.ClusterResumeMargin)
	}
	if c.Cluster == "" {
		if c.NodeID != "" {
			bad("node_id %q is set without cluster: give --cluster NAME too", c.NodeID)
		}
		return
	}
	if !topic.ValidName(c.Cluster) {
		bad("cluster %q: invalid name (%s)", c.Cluster, topic.NameRule)
	}
	if c.NodeID != "" && !topic.ValidName(c.NodeID) {
		bad("node_id %q: invalid name (%s)", c.NodeID, topic.NameRule)
	}
	if c.MQTTBroker == "" {
		bad("cluster %q needs mqtt_broker: the hubs of a cluster replicate each other through an external MQTT broker (--mqtt-broker URL)", c.Cluster)
	}
	if c.MQTTShareGroup != "" {
		bad("cluster and mqtt_share_group exclude each other: every hub of a cluster must receive every device message, a shared subscription gives each hub only a part")
	}
}
