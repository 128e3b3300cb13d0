// Package depsonly pins module dependencies while the packages that use them
// are written. Remove once every import below is used elsewhere.
package depsonly

import (
	_ "github.com/eclipse/paho.mqtt.golang"
	_ "github.com/lxzan/gws"
	_ "github.com/mochi-mqtt/server/v2"
	_ "github.com/mochi-mqtt/server/v2/hooks/auth"
	_ "github.com/mochi-mqtt/server/v2/listeners"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/prometheus/client_golang/prometheus/testutil"
	_ "go.etcd.io/bbolt"
	_ "go.uber.org/goleak"
	_ "gopkg.in/yaml.v3"
)
