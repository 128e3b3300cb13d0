package devices

import (
	"errors"
	"unicode/utf8"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/telehub/telehub/bridge"
)

// This file holds what the broker hook does so that the embedded broker
// (mochi) answers clients the way MQTT 3.1.1 and 5 say, where mochi on its
// own does not: SUBSCRIBE packet ids, PUBACK reason codes, MQTT 5 reason
// codes for refused payloads, the Maximum Packet Size, and session keys
// that one device cannot share with another.

// mqttReasonMax bounds the reason string of an MQTT 5 PUBACK, in bytes, so
// that the acknowledgement stays small.
const mqttReasonMax = 128

// mqttAckState is what a connection remembers between reading a SUBSCRIBE
// or UNSUBSCRIBE and writing its acknowledgement. Both happen on the
// connection's own goroutine, one packet at a time.
type mqttAckState struct {
	// id is the packet id the client sent; the broker sees 0 instead.
	id uint16
	// overLimit marks the filters of a SUBSCRIBE refused for the
	// subscription limit, by index.
	overLimit []bool
}

// sessionKey is the session (mochi client id) of a client that connects as
// device with clientID. With credentials, sessions are kept per device:
// the key is the device id, a "/" (which no device id holds) and the
// client id, so that a device can resume only its own sessions and never
// take over another device's, whatever client id it sends.
func sessionKey(device, clientID string) string { return device + "/" + clientID }

// OnConnect derives the session key of an authenticated client and lets
// the connection's reader report packets over the size limit.
func (h *brokerHook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	if h.auth != nil {
		cl.ID = sessionKey(string(cl.Properties.Username), cl.ID)
	}
	if lc, ok := cl.Net.Conn.(*mqttLimitedConn); ok {
		lc.onTooLarge = func(size int) { h.tooLarge(cl, size) }
	}
	return nil
}

// tooLarge ends the connection of a client that sent a packet over the
// size limit: MQTT 5 clients get a DISCONNECT with reason 0x95 first
// (MQTT 3.1.1 has no server DISCONNECT). It runs on the client's goroutine,
// in place of the read that met the packet.
func (h *brokerHook) tooLarge(cl *mqtt.Client, size int) {
	h.server.Log.Warn("mqtt client disconnected: packet too large", "client", cl.ID,
		"remote", cl.Net.Remote, "size", size, "limit", h.maxPacket)
	if cl.Properties.ProtocolVersion == 5 {
		_ = h.server.DisconnectClient(cl, packets.ErrPacketTooLarge)
	}
}

// compatRead rewrites an incoming SUBSCRIBE or UNSUBSCRIBE of connection
// c before mochi sees it. mochi refuses one whose packet id is in use by
// its own outgoing messages (0x91), though client and server packet ids
// are independent; the broker is handed id 0, which it never uses itself,
// and compatEncode puts the client's id back into the SUBACK or UNSUBACK.
// Filters beyond the subscription limit are made invalid, so that mochi
// refuses them, and marked for compatEncode.
func (h *brokerHook) compatRead(cl *mqtt.Client, c *mqttConn, pk packets.Packet) packets.Packet {
	t := pk.FixedHeader.Type
	if t != packets.Subscribe && t != packets.Unsubscribe || pk.PacketID == 0 {
		return pk
	}
	c.ack = mqttAckState{id: pk.PacketID}
	pk.PacketID = 0
	pk.FixedHeader.Qos = 0 // mochi checks that a packet id goes with QoS 1 flags
	if t == packets.Subscribe {
		c.subscribing.Store(true)
		c.ack.overLimit = h.limitSubscriptions(cl, pk.Filters)
		pk.Filters = append(packets.Subscriptions(nil), pk.Filters...)
		for i, over := range c.ack.overLimit {
			if over {
				pk.Filters[i].Filter = "" // not a valid filter: refused
			}
		}
	}
	return pk
}

// limitSubscriptions marks the filters that would take the client over
// the subscription limit (its routes count). Filters it holds already do
// not count.
func (h *brokerHook) limitSubscriptions(cl *mqtt.Client, filters packets.Subscriptions) []bool {
	room := h.limits.MaxSubscriptions - cl.State.Subscriptions.Len() - h.routes.count(cl)
	var over []bool
	for i, f := range filters {
		if _, held := cl.State.Subscriptions.Get(f.Filter); held || h.routes.holds(cl, f.Filter) {
			continue
		}
		if room--; room < 0 {
			if over == nil {
				over = make([]bool, len(filters))
			}
			over[i] = true
		}
	}
	if over != nil {
		h.dropLog.Warn("mqtt subscriptions refused: client at its subscription limit", "client", cl.ID,
			"limit", h.limits.MaxSubscriptions)
	}
	return over
}

// OnPacketEncode makes outgoing packets say what MQTT asks: the CONNACK
// of an MQTT 5 client advertises the Maximum Packet Size, a PUBACK never
// carries a reason code that is no PUBACK code, and a SUBACK or UNSUBACK
// carries the client's packet id (see compatRead).
func (h *brokerHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	switch pk.FixedHeader.Type {
	case packets.Connack:
		if pk.ReasonCode < packets.ErrUnspecifiedError.Code {
			pk.Properties.MaximumPacketSize = h.maxPacket
		}
	case packets.Puback:
		// mochi answers a QoS 1 publish with the "granted QoS 1" code 0x01
		// when the PUBACK has properties (mochi-mqtt/server#474).
		if pk.ReasonCode < packets.ErrUnspecifiedError.Code && pk.ReasonCode != packets.CodeNoMatchingSubscribers.Code {
			pk.ReasonCode = packets.CodeSuccess.Code
		}
	case packets.Suback, packets.Unsuback:
		if pk.PacketID == 0 {
			h.restoreAck(cl, &pk)
		}
	}
	return pk
}

// restoreAck puts the client's packet id into a SUBACK or UNSUBACK and, in
// a SUBACK, the reason for filters refused over the subscription limit:
// 0x97 quota exceeded for MQTT 5, 0x80 failure for MQTT 3.1.1.
func (h *brokerHook) restoreAck(cl *mqtt.Client, pk *packets.Packet) {
	v, ok := h.conns.Load(cl)
	if !ok {
		return
	}
	c := v.(*mqttConn)
	c.subscribing.Store(false)
	pk.PacketID = c.ack.id
	if pk.FixedHeader.Type == packets.Suback && c.ack.overLimit != nil {
		codes := append([]byte(nil), pk.ReasonCodes...)
		for i, over := range c.ack.overLimit {
			if over && i < len(codes) && cl.Properties.ProtocolVersion == 5 {
				codes[i] = packets.ErrQuotaExceeded.Code
			}
		}
		pk.ReasonCodes = codes
	}
	c.ack = mqttAckState{}
}

// mqttRefusal is a publish the hook refused. For mochi it is a
// packets.CodeSuccessIgnore (acknowledged, not forwarded), or, when the
// device should resend it later, a packets.ErrRejectPacket (left
// unacknowledged); OnPublish turns it into an MQTT 5 reason code where the
// client can take one.
type mqttRefusal struct {
	err error
	// badTopic is set when the topic, not the payload, is at fault.
	badTopic bool
	// resend is set when the publish is left unacknowledged.
	resend bool
}

func (r *mqttRefusal) Error() string { return r.err.Error() }

// Is makes a refusal the mochi error that says what to do with it.
func (r *mqttRefusal) Is(target error) bool {
	if r.resend {
		return target == packets.ErrRejectPacket
	}
	return target == packets.CodeSuccessIgnore
}

// mochiError is what mochi is told of err outside OnPublish (a will).
func mochiError(err error) error {
	var r *mqttRefusal
	if errors.As(err, &r) {
		if r.resend {
			return packets.ErrRejectPacket
		}
		return packets.CodeSuccessIgnore
	}
	return err
}

// ackCode is the error OnPublish returns to mochi for the outcome err of
// a publish. An MQTT 5 client's refused QoS 1 publish is answered
// with a PUBACK reason code and reason string: 0x87 not authorized for a
// topic the device may not publish to, 0x97 quota exceeded over the rate
// limit (a will without seq; publishes are paced instead), 0x90 topic name invalid for a bad device topic, 0x99 payload
// format invalid for a payload the hub cannot read, 0x80 otherwise.
// Others keep mochi's answer: a PUBACK 0x00 for a refusal (the error
// answer on devices/{id}/errors says why), none for a publish refused for
// the rate limit, which the device resends.
func ackCode(pk *packets.Packet, err error) error {
	var r *mqttRefusal
	if !errors.As(err, &r) {
		return err
	}
	// mochi answers a reason code with a PUBACK, also to a QoS 2 PUBLISH
	// (which wants a PUBREC): QoS 2 keeps mochi's own answer.
	if pk.ProtocolVersion != 5 || pk.FixedHeader.Qos != 1 {
		return mochiError(err)
	}
	code := packets.ErrPayloadFormatInvalid
	var be *bridge.Error
	switch {
	case !errors.As(r.err, &be):
		code = packets.ErrUnspecifiedError
	case be.Code == bridge.CodeForbidden:
		code = packets.ErrNotAuthorized
	case be.Code == bridge.CodeRateLimited:
		code = packets.ErrQuotaExceeded
	case r.badTopic:
		code = packets.ErrTopicNameInvalid
	case be.Code == bridge.CodeInternal:
		code = packets.ErrUnspecifiedError
	}
	msg := r.err.Error()
	if be != nil {
		msg = be.Code + ": " + be.Message
	}
	return packets.Code{Code: code.Code, Reason: truncateUTF8(msg, mqttReasonMax)}
}

// truncateUTF8 cuts s to at most n bytes on a rune boundary.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
