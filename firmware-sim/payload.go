package firmwaresim

import "strconv"

// SenML units of the metrics (RFC 8428 and RFC 8798 registries).
var metricUnits = [...]string{"Cel", "%RH", "kWh", "", ""}

// appendWSFrame appends the WebSocket telemetry frame of e:
// "values" form, or "senml" form when senml is set; both carry the seq.
func appendWSFrame(b []byte, e *entry, senml bool) []byte {
	b = append(b, `{"type":"telemetry","seq":`...)
	b = strconv.AppendUint(b, e.seq, 10)
	b = appendBoot(b, e)
	if senml {
		b = append(b, `,"senml":`...)
		b = appendSenML(b, e)
		return append(b, '}')
	}
	if !e.noTS {
		b = append(b, `,"ts":`...)
		b = strconv.AppendInt(b, e.ts, 10)
	}
	b = append(b, `,"values":`...)
	b = appendValues(b, &e.r)
	return append(b, '}')
}

// wsHeartbeat is the WebSocket heartbeat frame.
var wsHeartbeat = []byte(`{"type":"heartbeat"}`)

// appendMQTTPayload appends the devices/{id}/telemetry payload of e in
// format f; FormatPlain has no single payload (see appendPlainValue).
func appendMQTTPayload(b []byte, e *entry, f Format) []byte {
	switch f {
	case FormatSenML:
		return appendSenML(b, e)
	case FormatWrapped:
		b = appendSeqTS(b, e)
		b = append(b, `,"values":`...)
		b = appendValues(b, &e.r)
		return append(b, '}')
	}
	b = appendSeqTS(b, e)
	b = append(b, ',')
	b = appendMembers(b, &e.r)
	return append(b, '}')
}

func appendSeqTS(b []byte, e *entry) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, e.seq, 10)
	b = appendBoot(b, e)
	if e.noTS {
		return b
	}
	b = append(b, `,"ts":`...)
	return strconv.AppendInt(b, e.ts, 10)
}

// appendBoot appends ,"boot":"…" when the reading has a boot id (letters,
// digits and '-': nothing to escape).
func appendBoot(b []byte, e *entry) []byte {
	if e.boot == "" {
		return b
	}
	b = append(b, `,"boot":"`...)
	b = append(b, e.boot...)
	return append(b, '"')
}

// appendValues appends the reading as a JSON object of metric → value.
func appendValues(b []byte, r *Reading) []byte {
	b = append(b, '{')
	b = appendMembers(b, r)
	return append(b, '}')
}

// appendMembers appends the object members of the reading, without braces.
func appendMembers(b []byte, r *Reading) []byte {
	for i, name := range metricNames {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `":`...)
		b = appendJSONValue(b, r, i)
	}
	return b
}

// appendJSONValue appends metric i of r as a JSON value.
func appendJSONValue(b []byte, r *Reading, i int) []byte {
	switch i {
	case 3:
		return strconv.AppendQuote(b, r.Door)
	case 4:
		return strconv.AppendBool(b, r.Pump)
	}
	return strconv.AppendFloat(b, numericValue(r, i), 'f', -1, 64)
}

// numericValue returns metric i (0, 1 or 2) of r.
func numericValue(r *Reading, i int) float64 {
	switch i {
	case 0:
		return r.Temp
	case 1:
		return r.Hum
	}
	return r.Energy
}

// appendPlainValue appends metric i of r as the plain-text payload of
// devices/{id}/telemetry/{metric}.
func appendPlainValue(b []byte, r *Reading, i int) []byte {
	if i == 3 {
		return append(b, r.Door...)
	}
	return appendJSONValue(b, r, i)
}

// appendSenML appends the reading as a SenML pack (RFC 8428) with the
// device time as base time in seconds, written to the millisecond.
func appendSenML(b []byte, e *entry) []byte {
	b = append(b, `[{"bt":`...)
	b = appendSeconds(b, e.ts)
	for i, name := range metricNames {
		if i > 0 {
			b = append(b, `,{`...)
		} else {
			b = append(b, ',')
		}
		b = append(b, `"n":"`...)
		b = append(b, name...)
		b = append(b, '"')
		if u := metricUnits[i]; u != "" {
			b = append(b, `,"u":"`...)
			b = append(b, u...)
			b = append(b, '"')
		}
		b = append(b, senmlValueKey(i)...)
		b = appendJSONValue(b, &e.r, i)
		b = append(b, '}')
	}
	return append(b, ']')
}

func senmlValueKey(i int) string {
	switch i {
	case 3:
		return `,"vs":`
	case 4:
		return `,"vb":`
	}
	return `,"v":`
}

// appendSeconds appends Unix milliseconds ms as decimal seconds.
func appendSeconds(b []byte, ms int64) []byte {
	b = strconv.AppendInt(b, ms/1000, 10)
	frac := ms % 1000
	return append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
}

// Payloads the hub must reject with bad_request, each for another reason:
// broken JSON, a nested value, a bad metric name, a seq of the wrong type.
// None carries a usable seq, so none disturbs the device's seq order.
var (
	malformedWS = [...][]byte{
		[]byte(`{"type":"telemetry","values":{"temp":`),
		[]byte(`{"type":"telemetry","values":{"temp":{"c":21}}}`),
		[]byte(`{"type":"telemetry","values":{"bad/name":1}}`),
		[]byte(`{"type":"telemetry","seq":"x","values":{"temp":1}}`),
	}
	malformedMQTT = [...][]byte{
		[]byte(`{"temp":`),
		[]byte(`{"temp":{"c":21}}`),
		[]byte(`{"bad/name":1}`),
		[]byte(`{"seq":"x","temp":1}`),
	}
)
