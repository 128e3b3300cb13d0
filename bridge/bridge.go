package bridge

import (
	"log/slog"
	"time"

	"github.com/telehub/telehub/internal/metrics"
)

// Store is what the bridge needs from storage.
type Store interface {
	Submit(w *Write) error
}

// Config configures a Bridge.
type Config struct {
	Store      Store
	Logger     *slog.Logger
	Metrics    *metrics.Metrics
	ErrorRate  float64
	ErrorBurst int
	Now        func() time.Time
}

// Bridge builds events and submits them.
type Bridge struct{ cfg Config }

// New returns a Bridge.
func New(cfg Config) (*Bridge, error) { return &Bridge{cfg: cfg}, nil }

// Telemetry submits the readings of p.
func (b *Bridge) Telemetry(in Input, p Payload, done func(Result)) error { return nil }

// Reject records a rejected payload.
func (b *Bridge) Reject(in Input, err error) Rejection { return Rejection{} }

// Presence submits a presence event.
func (b *Bridge) Presence(device string, p Presence, at time.Time, done func(Result)) error {
	return nil
}

// ErrorAnswer returns the error answer JSON.
func ErrorAnswer(code, message, topic string) []byte { return nil }

// FormatTime formats t as RFC 3339 UTC with milliseconds.
func FormatTime(t time.Time) string { return string(AppendTime(nil, t)) }

// AppendTime appends FormatTime(t) to b.
func AppendTime(b []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
}
