// Package api serves telehub's REST endpoints of SPEC §7: the device list and
// device state, retained events, and the health probes; and the admin API of
// SPEC §9, which issues and revokes device and watcher tokens. Handlers of
// the read endpoints only read: they never hold a storage transaction across
// a network write, and events are read in bounded chunks.
//
// With an auth.Auth holding credentials, the read endpoints need a watcher
// or the admin token (Authorization: Bearer, or ?token= for browsers); a
// watcher reads events only within its scopes and sees the latest values
// only of the metrics they cover. The admin API takes the admin token in
// the Authorization header only.
//
// An API is safe for concurrent use; it keeps no state of its own.
package api
