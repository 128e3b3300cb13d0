package devices

import paho "github.com/eclipse/paho.mqtt.golang"

// retainedCopy reports whether m is the broker's stored copy of a
// retained message, which the hub ignores on the device topics. A broker
// sends a topic's retained message, flagged retained, whenever a
// subscription to it is made, and the hub subscribes again on every
// connection: a reading without seq would be stored again with a new
// time, and a stale retained `offline` (a retained will) would take a
// device offline that is online now. A live message delivered through an
// existing subscription never carries the flag (MQTT 3.1.1, what paho
// speaks), however it was published. The cluster's topics, where peer
// hubs retain on purpose, are handled before this.
func (e *External) retainedCopy(m paho.Message) bool {
	if !m.Retained() {
		return false
	}
	e.log.Debug("retained copy of a device message ignored", "topic", m.Topic())
	return true
}
