package devices

import (
	"errors"
	"fmt"
	"time"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/topic"
)

// Defaults of BrokerConfig and ExternalConfig.
const (
	// DefaultBrokerAddr is the embedded broker's default listen address
	// (--mqtt-addr).
	DefaultBrokerAddr = "127.0.0.1:1883"
	// DefaultMQTTConnectTimeout bounds the wait for a new MQTT connection
	// to be established (CONNECT on the embedded broker, CONNACK from an
	// external one).
	DefaultMQTTConnectTimeout = 10 * time.Second
)

const (
	// mqttHeartbeatMax is the largest heartbeat payload.
	mqttHeartbeatMax = 1 << 10
	// mqttPacketOverhead is what an MQTT packet may carry besides its
	// payload (fixed header, topic, properties) before the broker refuses
	// it outright and drops the connection. Payloads over the max payload
	// but within this margin are refused with an error answer instead.
	mqttPacketOverhead = 4 << 10
	// mqttMaxPayload is the largest MaxPayload: an MQTT packet is at most
	// 256 MiB.
	mqttMaxPayload = 256<<20 - mqttPacketOverhead
	// mqttRecheck is the pause in a connection's traffic after which it
	// checks that it still holds its device's presence session; device
	// timeouts are expected to be longer.
	mqttRecheck = time.Second
	// mqttSysInterval is how often the broker refreshes its $SYS topics,
	// in seconds.
	mqttSysInterval = 60
)

// mqttIngest is the part of device message handling both MQTT transports
// share: the bridge, the payload limit and how rejections are answered.
type mqttIngest struct {
	bridge     Ingester
	maxPayload int
}

// mqttInput describes a publish to device's topic for the bridge.
func mqttInput(device, topic string, at time.Time) bridge.Input {
	return bridge.Input{Device: device, Transport: bridge.TransportMQTT, SourceTopic: topic, Received: at}
}

// reject records a rejected publish with the bridge. When the device
// should be answered now, it returns the answer's topic and body.
func (g *mqttIngest) reject(in bridge.Input, err error) (answerTopic string, body []byte, answer bool) {
	rej := g.bridge.Reject(in, err)
	if !rej.Answer || topic.ValidDeviceID(in.Device) != nil {
		return "", nil, false
	}
	code, msg := bridge.CodeBadRequest, err.Error()
	var be *bridge.Error
	if errors.As(err, &be) {
		code, msg = be.Code, be.Message
	}
	return "devices/" + in.Device + "/errors", bridge.ErrorAnswer(code, msg, in.SourceTopic), true
}

// mqttStoreError is the rejection of a payload the bridge refused (an
// *bridge.Error, kept as is) or the hub could not store (CodeInternal).
func mqttStoreError(err error) error {
	var be *bridge.Error
	if errors.As(err, &be) {
		return be
	}
	return &bridge.Error{Code: bridge.CodeInternal, Message: "reading not stored: " + err.Error()}
}

// mqttForbidden is the rejection of a publish outside the device's own
// topics.
func mqttForbidden(device, topic string) error {
	return &bridge.Error{Code: bridge.CodeForbidden,
		Message: fmt.Sprintf("device %q may publish only under devices/%s/, not to %q", device, device, topic)}
}

// statusOffline applies a status "offline" for device from a source that
// does not hold the device's session (external broker, another
// connection): the device's current session goes offline with reason will.
func statusOffline(live Presence, device string) {
	if session, online := live.Session(device); online {
		live.Disconnect(device, session, bridge.ReasonWill)
	}
}

// ignoreResult is the done of QoS 0 telemetry: nobody waits for it.
func ignoreResult(bridge.Result) {}
