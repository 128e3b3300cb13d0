// Package auth owns telehub's credentials: one admin token, device
// tokens each bound to one device id, and watcher tokens each carrying a list
// of topic-filter scopes. It answers "may this token do that?" for the
// device transports, the watcher streams, the REST API and the admin API.
//
// Tokens are 32 random bytes from crypto/rand, base64url-encoded without
// padding. Only their SHA-256 hashes are kept, in memory and on disk, and
// they are compared in constant time. Credentials come from two places:
// the configuration (plain tokens or "sha256:<hex>" hashes; read-only
// here) and the credentials file, <data-dir>/credentials.json, which holds
// what the admin API issued. The file holds hashes only, is mode 0600 and
// is replaced atomically (temporary file, fsync, rename) on every change.
//
// # Scopes
//
// A watcher may use a topic filter when one of its scopes covers it: every
// topic the filter matches is matched by the scope (see Covers). A watcher
// credential may also carry a commands scope: device-id patterns, read as
// the filters commands/{pattern}, of the devices the token may command
// (see ParseCommandScopes and AllowCommands).
//
// # Concurrency
//
// An *Auth is safe for concurrent use. Checks (Device, Watcher, Commands,
// Admin) read an immutable snapshot through an atomic pointer and never
// wait on a lock or the disk. Changes (Issue…, Revoke…) are serialized by a mutex: each
// builds a new snapshot, writes the file, and only then publishes the
// snapshot, so a change that could not be stored has no effect. The
// package starts no goroutines.
//
// # Caveats
//
// A token passed as ?token= (needed by browsers' EventSource and by
// WebSocket clients that cannot set headers) can end up in proxy and
// access logs; prefer the Authorization header where the client allows it,
// and serve over TLS whenever the hub is reachable beyond loopback.
package auth
