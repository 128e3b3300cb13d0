// Package logx is the one place that decides telehub's logging default:
// every part takes an injected *slog.Logger, and a part given none logs
// nowhere. Only cmd/telehub (through hub.NewLogger) decides where logs go.
package logx

import "log/slog"

// discard is the logger of parts given none.
var discard = slog.New(slog.DiscardHandler)

// Or returns l, or a logger that discards everything when l is nil.
func Or(l *slog.Logger) *slog.Logger {
	if l == nil {
		return discard
	}
	return l
}
