// Package commands owns the way down: commands that operators send to
// devices. It creates them durably through the store (each state change
// is a commands/{device} event committed with it), hands them in creation
// order to the transport that reaches the device, takes the devices'
// confirmations and results, and expires them when their ttl passes.
//
// # Concurrency
//
// A Service keeps the commands not yet final in memory under one mutex,
// never held while a write is submitted to the store or a frame handed to
// a transport. Sends to one device are serialized by that device's own
// lock, so that its commands leave in creation order. One goroutine and
// one timer serve the expiry heap of all commands; Shutdown stops it.
// The store enforces the state rules (never back), so racing changes
// (a result and an expiry at once) resolve to one honest final state.
package commands
