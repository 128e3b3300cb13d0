package devices

import (
	"encoding/json"
	"strings"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/topic"
)

// commandsTopic returns devices/{id}/commands, where a device receives its
// commands.
func commandsTopic(device string) string { return "devices/" + device + "/commands" }

// Reachable reports whether a client is subscribed to device's commands.
func (b *Broker) Reachable(device string) bool {
	if b.hook.routes.reaches(device) {
		return true
	}
	subs := b.server.Topics.Subscribers(commandsTopic(device))
	return len(subs.Subscriptions) > 0 || len(subs.Shared) > 0
}

// SendCommand publishes c with QoS 1 on devices/{id}/commands, to the
// clients with a route of the device's commands and through mochi to its
// subscribers; the device's PUBACK confirms it. A client with a route and
// a mochi subscription that matches too (a wildcard of its own) loses
// the route first, so that mochi delivers once, at the higher QoS of the
// two. false when the broker refused the publish.
func (b *Broker) SendCommand(device string, c *bridge.Command) bool {
	name, payload := commandsTopic(device), bridge.EncodeCommandPublish(c)
	subs := b.server.Topics.Subscribers(name)
	routed := b.hook.routes.of(device)
	for _, rt := range routed {
		if subscribedToo(subs, rt.cl.ID) {
			mu := b.hook.lockInflight(rt.cl)
			b.hook.demote(rt.cl, device)
			if mu != nil {
				mu.Unlock()
			}
			continue
		}
		b.hook.publishCommand(rt, name, payload)
	}
	if len(routed) > 0 && len(subs.Subscriptions) == 0 && len(subs.Shared) == 0 {
		// Counted as mochi counts its own publishes.
		atomic.AddInt64(&b.server.Info.PacketsReceived, 1)
		atomic.AddInt64(&b.server.Info.MessagesReceived, 1)
		return true
	}
	if err := b.server.Publish(name, payload, false, 1); err != nil {
		b.cfg.Logger.Warn("command not published", "device", device, "command", c.ID, "err", err)
		return false
	}
	return true
}

// subscribedToo reports whether client id is among subs, on its own or
// in a shared subscription.
func subscribedToo(subs *mqtt.Subscribers, id string) bool {
	if _, ok := subs.Subscriptions[id]; ok {
		return true
	}
	for _, group := range subs.Shared {
		if _, ok := group[id]; ok {
			return true
		}
	}
	return false
}

// OnSubscribed sends a device that subscribed to its commands those it
// has not confirmed. mochi delivers them after the SUBACK it writes next
// only in the sense MQTT allows: a client has its route before it
// subscribes.
func (h *brokerHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if h.commands == nil || cl.Net.Inline {
		return
	}
	for i, f := range pk.Filters {
		if i >= len(codes) || codes[i] >= packets.ErrUnspecifiedError.Code {
			continue
		}
		device, ok := commandsFilterDevice(f.Filter)
		if ok {
			h.commands.Connected(device)
		}
	}
}

// isCommandsTopic reports whether name is a device's commands topic.
func isCommandsTopic(name string) bool {
	_, ok := commandsFilterDevice(name)
	return ok
}

// commandsFilterDevice returns the device of the filter
// devices/{id}/commands, false for any other filter.
func commandsFilterDevice(filter string) (string, bool) {
	rest, ok := strings.CutPrefix(filter, "devices/")
	if !ok {
		return "", false
	}
	device, ok := strings.CutSuffix(rest, "/commands")
	if !ok || topic.ValidDeviceID(device) != nil {
		return "", false
	}
	return device, true
}

// OnQosPublish notes the packet id of a command publish written to cl, so
// that its PUBACK confirms the command.
func (h *brokerHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if h.commands == nil || pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos != 1 {
		return
	}
	if pk.TopicName != "" && !strings.HasSuffix(pk.TopicName, "/commands") || pk.Origin != mqtt.InlineClientId {
		return
	}
	var c struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(pk.Payload, &c) != nil || c.ID == "" {
		return
	}
	h.inflightMu.Lock()
	defer h.inflightMu.Unlock()
	m := h.inflight[cl]
	if m == nil {
		m = make(map[uint16]string)
		h.inflight[cl] = m
	}
	m[pk.PacketID] = c.ID
}

// confirmCommand confirms the command whose publish cl acknowledged with
// a PUBACK of packet id. It is called for the PUBACK as read, not from
// mochi's OnQosComplete: mochi also reports a client's own QoS 1 publish
// complete, under the client's packet id, which may equal a command's,
// and its in-flight store keeps one message per id for both directions,
// so it may have forgotten the command publish by the time the PUBACK
// comes.
func (h *brokerHook) confirmCommand(cl *mqtt.Client, packetID uint16) {
	if h.commands == nil {
		return
	}
	h.inflightMu.Lock()
	id, ok := h.inflight[cl][packetID]
	if ok {
		delete(h.inflight[cl], packetID)
	}
	h.inflightMu.Unlock()
	if ok {
		h.routes.release(cl, h.commandsUnacked)
		if err := h.commands.Answer("", bridge.CommandAnswer{ID: id}); err != nil {
			h.log.Debug("command confirmation not recorded", "command", id, "err", err)
		}
	}
}

// commandsUnacked returns how many command publishes to cl wait for their
// PUBACK.
func (h *brokerHook) commandsUnacked(cl *mqtt.Client) int {
	h.inflightMu.Lock()
	defer h.inflightMu.Unlock()
	return len(h.inflight[cl])
}

// forgetInflight drops what the hook noted of cl's command publishes; a
// session that resumes sends them again, and notes them again.
func (h *brokerHook) forgetInflight(cl *mqtt.Client) {
	h.inflightMu.Lock()
	delete(h.inflight, cl)
	h.inflightMu.Unlock()
}

// commandResult records a device's result or ack publish; a refused one
// is answered like a rejected payload.
func (h *brokerHook) commandResult(in bridge.Input, r *mqttRoute) error {
	var err error
	if h.commands == nil {
		err = bridge.Errorf("command results are not accepted: commands are off")
	} else {
		err = h.commands.Answer(r.device, r.answer)
	}
	if err != nil {
		h.reject(in, err)
		return &mqttRefusal{err: err}
	}
	return nil
}
