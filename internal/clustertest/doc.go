// Package clustertest tests several telehub hubs as one cluster: hub
// processes (cmd/telehub, built once per test binary) on a real Mosquitto
// with persistence on, simulated devices (firmware-sim) and recording
// watchers, all on free loopback ports. Hubs are killed with SIGKILL and
// restarted, the broker is restarted, and connections fail over from one
// hub to another through a small TCP proxy standing in for a load
// balancer.
//
// The package holds tests only. They skip with a message when mosquitto
// is not installed, and fail instead when TELEHUB_REQUIRE_EXTERNAL=1 (as
// in CI).
package clustertest
