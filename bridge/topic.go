package bridge

import "strings"

// TelemetryTopic returns "telemetry/{device}/{metric}".
func TelemetryTopic(device, metric string) string { return "telemetry/" + device + "/" + metric }

// PresenceTopic returns "presence/{device}".
func PresenceTopic(device string) string { return "presence/" + device }

// ErrorTopic returns "errors/{device}".
func ErrorTopic(device string) string { return "errors/" + device }

// Filter is a parsed MQTT topic filter.
type Filter struct {
	s      string
	levels []string
}

// ParseFilter parses a topic filter.
func ParseFilter(s string) (Filter, error) {
	return Filter{s: s, levels: strings.Split(s, "/")}, nil
}

// String returns the filter as given.
func (f Filter) String() string { return f.s }

// Match reports whether topic matches f.
func (f Filter) Match(topic string) bool { return f.s == topic }

// Levels returns the levels of the filter.
func (f Filter) Levels() []string { return f.levels }
