package bridge

import (
	"bytes"
	"strconv"
	"unicode/utf8"

	"github.com/telehub/telehub/internal/jsonx"
)

// ParsePlain parses the payload of an MQTT devices/{id}/telemetry/{metric}
// message: plain text, trimmed of white space. A finite decimal
// number ("21.5", "-3", "+4", ".5", "1e3") becomes a Number, exactly "true"
// or "false" a Bool, and any other non-empty valid UTF-8 text a String
// ("NaN", "Inf", "0x10" and "1e999" are strings). The metric name must pass
// topic.ValidMetric. Errors are *Error values with CodeBadRequest.
func ParsePlain(metric string, payload []byte) (Payload, error) {
	if err := validMetric(metric); err != nil {
		return Payload{}, err
	}
	text := bytes.TrimSpace(payload)
	switch {
	case len(text) == 0:
		return Payload{}, Errorf("value of %s: empty payload", jsonx.Quote(metric))
	case !utf8.Valid(text):
		return Payload{}, Errorf("value of %s: invalid UTF-8", jsonx.Quote(metric))
	}
	rd := Reading{Metric: metric, Value: plainValue(text)}
	return Payload{Readings: []Reading{rd}}, nil
}

// plainValue returns the value plain text stands for.
func plainValue(text []byte) Value {
	switch string(text) {
	case "true":
		return BoolValue(true)
	case "false":
		return BoolValue(false)
	}
	if isDecimal(text) {
		if f, err := strconv.ParseFloat(string(text), 64); err == nil {
			return NumberValue(f)
		}
	}
	return StringValue(string(text))
}

// isDecimal reports whether text is a decimal number: an optional sign,
// digits with an optional '.' (at least one digit in all), and an optional
// exponent.
func isDecimal(text []byte) bool {
	i := 0
	if i < len(text) && (text[i] == '+' || text[i] == '-') {
		i++
	}
	digits := 0
	for ; i < len(text) && isDigit(text[i]); i++ {
		digits++
	}
	if i < len(text) && text[i] == '.' {
		for i++; i < len(text) && isDigit(text[i]); i++ {
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(text) && (text[i] == 'e' || text[i] == 'E') {
		i++
		if i < len(text) && (text[i] == '+' || text[i] == '-') {
			i++
		}
		start := i
		for i < len(text) && isDigit(text[i]) {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == len(text)
}
