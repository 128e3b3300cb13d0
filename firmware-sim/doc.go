// Package firmwaresim simulates IoT devices talking to a telehub hub over
// the wire contract alone: WebSocket devices
// through gws, MQTT devices through paho.
//
// Each device has sensor models seeded from the run's seed and its index
// (a temperature with a daily cycle, an anti-correlated humidity, an
// energy counter, a door and a pump, occasional stuck or spiking sensors),
// a device seq that only grows until the device reboots, and a bounded store-and-forward
// buffer: readings taken while offline or not yet acked are kept in order
// and resent with their original seq after a reconnect, so the hub's dedup
// stores each exactly once. Reconnects back off exponentially with full
// jitter. Faults can be injected: dropped connections, malformed payloads,
// devices that go silent, and reboots (Config.RebootRate): the device drops
// its connection, loses the readings not yet confirmed (RAM) and starts its
// seq again at 1 in a new seq epoch, named by a new boot id unless
// Config.NoBoot (the hub then relies on the readings' ts, absent with
// Config.NoClock).
//
// Devices accept commands from the hub over both transports: a WebSocket
// device confirms a command frame at once with command_ack, an MQTT device
// subscribes to devices/{id}/commands with QoS 1 and confirms with the
// PUBACK; after Config.CommandDelay it answers with a command_result frame
// or a publish on devices/{id}/commands/{cid}/result. It knows
// set_interval (params {"interval":"500ms"}, or a number of milliseconds:
// its readings come that often from then on), ping (result
// {"pong":true}) and reboot; any other name, bad params, or the dice of
// Config.CommandFailRate give a failed result with a message. A reboot
// command is confirmed, then the device reboots as with RebootRate, and
// answers {"rebooted":true,"boot":"…"} from its new boot, on its next
// connection: it keeps that command's id and result across the reboot,
// as firmware keeps them in flash, so that a repeat is not run again. A
// command id seen before (the hub sends a command again until it is
// confirmed) is confirmed again and not run again; the last 256 ids are
// remembered, until a reboot. Results wait for a connection when the
// device has none (at most 64, in RAM: a reboot loses them).
//
// With Config.Watchers, the run also opens watchers on the hub's SSE or
// WebSocket stream before the devices start. They count the events
// delivered to them and measure device → watcher latency (receive time
// minus the event's "ts", the device's reading time in milliseconds); one
// the hub disconnects (a slow consumer) resumes after its last event.
//
// RunBench is a second, lean load mode (firmware-sim bench) for measuring
// the hub's or any MQTT broker's ceiling rather than device behaviour: raw
// MQTT 3.1.1 publishers, each keeping up to a window of QoS 1 publishes
// in flight and reading its PUBACKs on a goroutine of its own, publish
// one-metric payloads carrying their send time in microseconds (sent_us);
// watchers read the hub's SSE stream or subscribe on a plain MQTT broker
// and measure latency from it, so that one run compares telehub and
// another broker on equal terms.
//
// After the run, Run waits for outstanding acks and, with Config.Verify,
// pages through GET /v1/events to check that every confirmed reading is
// stored exactly once, readings being told apart by seq epoch and seq (see
// VerifyResult for how each payload form is matched).
//
// # Concurrency
//
// A Sim runs once. Run owns every goroutine it starts and waits for all of
// them before it returns: a few scheduler goroutines (Config.Schedulers)
// drive the readings, heartbeats, reconnect timers and commands of all
// devices from one min-heap and one timer each, never a timer or goroutine
// per device, reading or command; a few connector goroutines (Config.Connectors) dial; each
// live connection has its read loop (gws) or PUBACK waiter plus paho's own
// goroutines (MQTT); each watcher has one goroutine that connects, reads
// (the WebSocket read loop runs on it) and reconnects. Scheduler goroutines
// write readings to the connections themselves, bounded by
// Config.WriteTimeout; a device's sending is serialized by its own lock,
// and its state by another lock never held across I/O.
//
// # Caveats
//
// Device ids are IDPrefix+n: two simulators with the same prefix against
// one hub replace each other's connections. The default seq start comes
// from the wall clock so that a later run's seqs stay above an earlier
// run's; a hub whose clock-derived seqs went further (SeqStart set by hand)
// will take this run's readings for resends and not store them.
//
// Watchers measure latency against the device clock, so hub and simulator
// must share a clock (one machine); a resent reading keeps its original
// time, so resends after a reconnect show up as long latencies.
package firmwaresim
