// Package web owns telehub's embedded operator dashboard: one HTML page and
// its scripts and style sheet, compiled into the binary with go:embed so the
// dashboard works offline, with no CDN and no build step.
//
// The page is a client of the public API only. At load it reads the device
// list (GET /v1/devices, GET /v1/devices/{id}) and the recent history of its
// panels (GET /v1/events?order=desc&before=…), then follows one EventSource
// on /v1/stream (telemetry/#, presence/#, errors/#) resumed right after the
// newest event it read, so nothing is missed or shown twice. The header's
// rejected count is telehub_payloads_rejected_total read from /metrics. A
// device is deleted with DELETE /v1/devices/{id} after a confirmation in the
// page.
//
// Concurrency: Handler returns an immutable http.Handler over read-only
// embedded files; it is safe for any number of concurrent requests.
package web
