// Package presence decides which devices are online. The transports of
// package devices report every connection, disconnection and sign of
// life to one Tracker; the Tracker numbers each device's sessions, takes
// a silent device offline after the device timeout, and emits a presence
// event for every change through its Sink (in telehub the bridge, which
// stores it).
//
// # Concurrency
//
// A Tracker is safe for concurrent use. Its methods hold one mutex
// briefly. One goroutine, started by Start and stopped by Close, handles
// the device timeouts of all devices with one timer.
package presence
