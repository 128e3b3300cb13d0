// Package presence decides which devices are online. The transports of
// package devices report every connection, disconnection and sign of
// life to one Tracker; the Tracker numbers each device's sessions, takes
// a silent device offline after the device timeout, and emits a presence
// event for every change through its Sink (in telehub the bridge, which
// stores it).
//
// Memory is bounded by the devices seen recently, not by every id ever
// seen: a device offline for ForgetAfter, whose events are stored, is
// forgotten, and read back from Records (the stored device records) when
// it returns, so that its sessions keep increasing.
//
// # Concurrency
//
// A Tracker is safe for concurrent use. Its methods hold one mutex
// briefly and never while the Sink runs or Records is read: a change of
// a device takes the device's next ticket under the mutex, and its event
// is submitted once the device's earlier events are. A Sink that blocks (a
// full storage queue) therefore holds up the changes of that device alone,
// which stay in order. Connect, Heard and Disconnect return once their own
// event, if any, is submitted.
//
// One goroutine, started by Start and stopped by Shutdown, handles the
// device timeouts of all devices with one timer and one heap, and forgets
// offline devices.
package presence
