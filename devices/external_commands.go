package devices

import (
	"sync"

	"github.com/telehub/telehub/bridge"
)

// externalCommandBacklog bounds the devices waiting for their unconfirmed
// commands to be sent again; past it a device's turn is dropped (counted
// in metrics.MQTTDropped) and comes with its next status "online".
const externalCommandBacklog = 1 << 16

// externalCommands is the command side of External: through an external
// broker the hub publishes commands QoS 1 on devices/{id}/commands and
// subscribes to the devices' answers. The broker does not tell the hub
// who is subscribed, nor pass on a device's PUBACK, so:
//   - a device is reachable while its presence is online over MQTT (a
//     status "online", a heartbeat or readings within the device
//     timeout) and the hub's client is connected or reconnecting;
//   - its unconfirmed commands are sent again when its presence starts a
//     new session and on every status "online" it publishes (which a
//     device sends after subscribing to its commands);
//   - a command becomes delivered when the device publishes
//     devices/{id}/commands/{cid}/ack, and final with its result on
//     devices/{id}/commands/{cid}/result, which also proves receipt.
//
// The sends of a device coming online run on a goroutine of External, not
// on paho's dispatch goroutine, which must never wait on a publish.
type externalCommands struct {
	cmd  Commander // nil: commands are off
	wake chan struct{}

	mu    sync.Mutex
	ready map[string]struct{} // devices whose unconfirmed commands go again
}

func newExternalCommands(cmd Commander) externalCommands {
	return externalCommands{cmd: cmd, wake: make(chan struct{}, 1), ready: make(map[string]struct{})}
}

// externalCommandFilters adds the subscriptions to the devices' command
// answers to filters, under prefix (a share group's, or "").
func externalCommandFilters(filters map[string]byte, prefix string) {
	filters[prefix+"devices/+/commands/+/result"] = 1
	filters[prefix+"devices/+/commands/+/ack"] = 1
}

// online queues device for its unconfirmed commands; false when the
// backlog is full.
func (c *externalCommands) online(device string) bool {
	if c.cmd == nil {
		return true
	}
	c.mu.Lock()
	_, queued := c.ready[device]
	full := !queued && len(c.ready) >= externalCommandBacklog
	if !full {
		c.ready[device] = struct{}{}
	}
	c.mu.Unlock()
	if full {
		return false
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return true
}

// take returns the queued devices and empties the queue.
func (c *externalCommands) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.ready))
	for d := range c.ready {
		out = append(out, d)
	}
	clear(c.ready)
	return out
}

// commandLoop sends the unconfirmed commands of devices that came online,
// until Shutdown.
func (e *External) commandLoop() {
	defer e.stop.Exit()
	for {
		select {
		case <-e.stop.Done():
			return
		case <-e.cmds.wake:
		}
		for _, d := range e.cmds.take() {
			e.cmds.cmd.Connected(d)
		}
	}
}

// deviceOnline notes a sign that device can take commands now: its
// presence started a session, or it published status "online".
func (e *External) deviceOnline(device string) {
	if !e.cmds.online(device) {
		e.cfg.Metrics.MQTTDropped.Inc()
	}
}

// commandAnswer records a device's ack or result publish; a refused one
// (unknown command, another device's) is rejected like a bad payload.
func (e *External) commandAnswer(in bridge.Input, r *mqttRoute) {
	var err error
	if e.cmds.cmd == nil {
		err = bridge.Errorf("command answers are not accepted: commands are off")
	} else {
		err = e.cmds.cmd.Answer(r.device, r.answer)
	}
	if err != nil {
		e.reject(in, err)
	}
}

// Reachable reports whether device can get commands through the broker:
// its presence is online over MQTT and the hub's client is connected, or
// reconnecting (paho then keeps QoS 1 publishes until the connection is
// back).
func (e *External) Reachable(device string) bool {
	if e.cmds.cmd == nil || !e.client.IsConnected() {
		return false
	}
	_, online, transport, ok := e.cfg.Presence.LastSeen(device)
	return ok && online && transport == bridge.TransportMQTT
}

// SendCommand publishes c QoS 1 on devices/{id}/commands without waiting
// for the broker; false when the client refused it at once (not
// connected).
func (e *External) SendCommand(device string, c *bridge.Command) bool {
	tok := e.client.Publish(commandsTopic(device), 1, false, bridge.EncodeCommandPublish(c))
	if err := tok.Error(); err != nil {
		e.log.Warn("command not published", "device", device, "command", c.ID, "err", err)
		return false
	}
	return true
}
