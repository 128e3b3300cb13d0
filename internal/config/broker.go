package config

import (
	"net/url"
	"strings"
)

// brokerSchemes are the URL schemes of an external broker the hub can dial.
var brokerSchemes = []string{"tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss"}

// validateBroker reports through bad what is wrong with the external
// broker options, so that a mistyped URL is a configuration error found
// before anything starts.
func (c Config) validateBroker(bad func(format string, args ...any)) {
	if c.MQTTBroker != "" {
		u, err := url.Parse(c.MQTTBroker)
		switch {
		case err != nil:
			bad("mqtt_broker %q is not a URL: give scheme://host:port, like tcp://127.0.0.1:1883", c.MQTTBroker)
		case !oneOf(u.Scheme, brokerSchemes...):
			bad("mqtt_broker %q: the scheme must be one of %s, like tcp://127.0.0.1:1883", c.MQTTBroker, strings.Join(brokerSchemes, ", "))
		case u.Host == "":
			bad("mqtt_broker %q has no host: give scheme://host:port, like tcp://127.0.0.1:1883", c.MQTTBroker)
		}
	}
	if strings.ContainsAny(c.MQTTShareGroup, "/+#") {
		bad("mqtt_share_group %q must not contain '/', '+' or '#'", c.MQTTShareGroup)
	}
}
