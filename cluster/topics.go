package cluster

import (
	"strings"

	"github.com/telehub/telehub/internal/topic"
)

// Topics of a cluster under telehub/{cluster}/.
const (
	topicRoot     = "telehub/"
	levelWS       = "ws"
	levelPresence = "presence"
	levelSync     = "sync"
	levelCommands = "commands"
)

// Message kinds, the label values of the cluster metrics.
const (
	kindTelemetry = "telemetry"
	kindPresence  = "presence"
)

// peerTopic is a cluster topic taken apart.
type peerTopic struct {
	level  string // levelWS, levelPresence or levelSync
	node   string
	device string // "" for a hub's own presence and sync topics
}

// topics builds and parses the topics of one cluster.
type topics struct {
	prefix string // telehub/{cluster}/
}

func newTopics(cluster string) topics { return topics{prefix: topicRoot + cluster + "/"} }

// ws is the topic of the WebSocket readings of device forwarded by node.
func (t topics) ws(node, device string) string { return t.prefix + levelWS + "/" + node + "/" + device }

// presence is the topic of the presence changes of device seen by node.
func (t topics) presence(node, device string) string {
	return t.prefix + levelPresence + "/" + node + "/" + device
}

// commands is the topic of the changes node made of device's commands.
func (t topics) commands(node, device string) string {
	return t.prefix + levelCommands + "/" + node + "/" + device
}

// hub is the topic where node says whether it is up.
func (t topics) hub(node string) string { return t.prefix + levelPresence + "/" + node }

// sync is the topic of node's catch-up markers.
func (t topics) sync(node string) string { return t.prefix + levelSync + "/" + node }

// filters are the subscriptions of node: every peer's forwarded readings
// and presence changes, every hub's state, and its own sync markers.
func (t topics) filters(node string) map[string]byte {
	return map[string]byte{
		t.prefix + levelWS + "/+/+":       1,
		t.prefix + levelPresence + "/+/+": 1,
		t.prefix + levelPresence + "/+":   1,
		t.prefix + levelCommands + "/+/+": 1,
		t.sync(node):                      1,
	}
}

// owns reports whether name is a topic of this cluster.
func (t topics) owns(name string) bool { return strings.HasPrefix(name, t.prefix) }

// parse takes a topic of this cluster apart; ok is false for one this
// package does not publish (wrong shape, an invalid node or device id).
func (t topics) parse(name string) (pt peerTopic, ok bool) {
	rest, found := strings.CutPrefix(name, t.prefix)
	if !found {
		return pt, false
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 3 && (parts[0] == levelWS || parts[0] == levelPresence || parts[0] == levelCommands):
		pt = peerTopic{level: parts[0], node: parts[1], device: parts[2]}
	case len(parts) == 2 && (parts[0] == levelPresence || parts[0] == levelSync):
		pt = peerTopic{level: parts[0], node: parts[1]}
	default:
		return pt, false
	}
	if !topic.ValidName(pt.node) || (len(parts) == 3 && !topic.ValidName(pt.device)) {
		return pt, false
	}
	return pt, true
}
