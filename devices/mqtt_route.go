package devices

import (
	"fmt"
	"strings"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/topic"
)

// mqttTopicKind says what a topic under devices/ carries.
type mqttTopicKind uint8

// The kinds of device topics.
const (
	mqttForeign       mqttTopicKind = iota // not under devices/: not the hub's business
	mqttInvalid                            // under devices/ but no topic a device publishes to
	mqttTelemetry                          // devices/{id}/telemetry
	mqttMetric                             // devices/{id}/telemetry/{metric}
	mqttHeartbeat                          // devices/{id}/heartbeat
	mqttStatus                             // devices/{id}/status
	mqttAnswer                             // devices/{id}/errors: the hub's own answers
	mqttCommandResult                      // devices/{id}/commands/{cid}/result
	mqttCommandAck                         // devices/{id}/commands/{cid}/ack
)

// mqttRoute is a publish routed by its topic and checked by its payload.
type mqttRoute struct {
	kind mqttTopicKind
	// device is the valid device id the topic names, or "" when the topic
	// names none (foreign topic or invalid id).
	device string
	// rawID is the device segment of the topic as published, valid or not.
	rawID  string
	metric string
	// commandID is the command a result or ack publish answers.
	commandID string
	// online is the value of a valid status payload.
	online bool
	// payload holds the readings of a valid telemetry publish.
	payload bridge.Payload
	// answer is the result of a valid command result publish, or the
	// confirmation of an ack publish.
	answer bridge.CommandAnswer
}

// stores reports whether the route carries readings to store.
func (r *mqttRoute) stores() bool { return r.kind == mqttTelemetry || r.kind == mqttMetric }

// wentOffline reports whether the route is a valid status "offline".
func (r *mqttRoute) wentOffline() bool { return r.kind == mqttStatus && !r.online }

// routeMQTT routes one publish: it parses the topic, checks the payload
// against its kind and maxPayload and parses telemetry. On a rejection it
// returns the route as far as it got (device set when the topic names a
// valid one) and a *bridge.Error.
func routeMQTT(topic string, payload []byte, maxPayload int) (mqttRoute, error) {
	r, err := parseDeviceTopic(topic)
	if err != nil || r.kind == mqttForeign || r.kind == mqttAnswer {
		return r, err
	}
	if len(payload) > maxPayload {
		return r, &bridge.Error{Code: bridge.CodePayloadTooLarge,
			Message: fmt.Sprintf("payload of %d bytes is over the limit of %d bytes", len(payload), maxPayload)}
	}
	err = checkDevicePayload(&r, payload)
	return r, err
}

// parseDeviceTopic routes a topic without looking at the payload.
func parseDeviceTopic(name string) (mqttRoute, error) {
	rest, ok := strings.CutPrefix(name, "devices/")
	if !ok {
		return mqttRoute{kind: mqttForeign}, nil
	}
	id, sub, _ := strings.Cut(rest, "/")
	r := mqttRoute{kind: mqttInvalid, rawID: id}
	if err := topic.ValidDeviceID(id); err != nil {
		return r, bridge.Errorf("%v", err)
	}
	r.device = id
	switch sub {
	case "telemetry":
		r.kind = mqttTelemetry
	case "heartbeat":
		r.kind = mqttHeartbeat
	case "status":
		r.kind = mqttStatus
	case "errors":
		r.kind = mqttAnswer
	default:
		if cid, kind, ok := commandAnswerTopic(sub); ok {
			r.kind, r.commandID = kind, cid
			return r, nil
		}
		metric, ok := strings.CutPrefix(sub, "telemetry/")
		if !ok {
			return r, bridge.Errorf("unknown topic %q: devices publish to devices/{id}/telemetry, "+
				"devices/{id}/telemetry/{metric}, devices/{id}/heartbeat, devices/{id}/status, "+
				"devices/{id}/commands/{cid}/result or devices/{id}/commands/{cid}/ack", name)
		}
		if err := topic.ValidMetric(metric); err != nil {
			return r, bridge.Errorf("%v", err)
		}
		r.kind, r.metric = mqttMetric, metric
	}
	return r, nil
}

// checkDevicePayload validates payload for the kind of r and parses
// telemetry into r.payload.
func checkDevicePayload(r *mqttRoute, payload []byte) error {
	var err error
	switch r.kind {
	case mqttTelemetry:
		r.payload, err = bridge.ParseTelemetry(payload)
	case mqttMetric:
		r.payload, err = bridge.ParsePlain(r.metric, payload)
	case mqttCommandResult:
		r.answer, err = bridge.ParseCommandResult(r.commandID, payload)
	case mqttCommandAck: // the payload says nothing: the topic confirms
		r.answer = bridge.CommandAnswer{ID: r.commandID}
	case mqttHeartbeat:
		if len(payload) > mqttHeartbeatMax {
			err = &bridge.Error{Code: bridge.CodePayloadTooLarge,
				Message: fmt.Sprintf("heartbeat of %d bytes is over the limit of %d bytes", len(payload), mqttHeartbeatMax)}
		}
	case mqttStatus:
		switch string(payload) {
		case "online":
			r.online = true
		case "offline":
		default:
			err = bridge.Errorf("status payload must be \"online\" or \"offline\"")
		}
	}
	return err
}

// commandAnswerTopic returns the command id and kind of
// "commands/{cid}/result" or "commands/{cid}/ack", the part of an answer
// topic after devices/{id}/.
func commandAnswerTopic(sub string) (string, mqttTopicKind, bool) {
	rest, ok := strings.CutPrefix(sub, "commands/")
	if !ok {
		return "", 0, false
	}
	kind := mqttCommandResult
	cid, ok := strings.CutSuffix(rest, "/result")
	if !ok {
		kind = mqttCommandAck
		cid, ok = strings.CutSuffix(rest, "/ack")
	}
	if !ok || cid == "" || len(cid) > 64 || strings.ContainsAny(cid, "/+#") {
		return "", 0, false
	}
	return cid, kind, true
}
