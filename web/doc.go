// Package web owns telehub's embedded operator dashboard: one HTML page and
// its scripts and style sheet, compiled into the binary with go:embed so the
// dashboard works offline, with no CDN and no build step.
//
// The page is a client of the public API only: it loads its initial state
// from GET /v1/devices and GET /v1/devices/{id} and then follows one
// EventSource on /v1/stream (telemetry/#, presence/#, errors/#). The
// header's rejected count is telehub_payloads_rejected_total read from
// /metrics.
//
// Concurrency: Handler returns an immutable http.Handler over read-only
// embedded files; it is safe for any number of concurrent requests.
package web
