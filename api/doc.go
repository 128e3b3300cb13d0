// Package api serves telehub's REST endpoints of SPEC §7: the device list and
// device state, retained events, and the health probes. Handlers only read:
// they never hold a storage transaction across a network write, and events
// are read in bounded chunks.
package api
