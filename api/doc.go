// Package api serves telehub's REST endpoints (docs/API.md): the paged
// device list, device state and device deletion, retained events oldest or
// newest first, and the health probes; and the admin API, which issues and
// revokes device and watcher tokens. Handlers of the read endpoints only
// read: they never hold a storage transaction across a network write, and
// events and devices are read in bounded chunks.
//
// With an auth.Auth holding credentials, the read endpoints need a watcher
// or the admin token (Authorization: Bearer, or ?token= for browsers); a
// watcher reads events only within its scopes, lists only the devices its
// scopes can match and sees the latest values only of the metrics they
// cover. The admin API and device deletion take the admin token in the
// Authorization header only.
//
// An API is safe for concurrent use; it keeps no state of its own.
package api
