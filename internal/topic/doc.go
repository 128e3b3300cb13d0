// Package topic owns telehub's names and topics: the rule for device ids
// and metric names, the normalized topics events are published on
// (telemetry/{device}/{metric}, presence/{device}, errors/{device},
// commands/{device}) and MQTT-style topic filters with their matching.
//
// It is a leaf package: the bridge, storage, the stream hub, the REST API
// and the credential store import it without importing one another.
//
// # Concurrency
//
// Everything here is a pure function or an immutable value, safe for
// concurrent use. The package starts no goroutines.
package topic
