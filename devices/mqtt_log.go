package devices

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// mqttLogEvery is how often, at most, one kind of warning of the embedded
// broker is logged; the next one says how many were suppressed meanwhile.
const mqttLogEvery = 10 * time.Second

// mqttLogKinds bounds the kinds of warnings the broker's log limiter
// tracks; further kinds are suppressed until the limiter's window passes.
const mqttLogKinds = 64

// mochi's log messages that are routine for telehub and are logged at
// debug level only.
var mqttQuietMessages = map[string]bool{
	// A keepalive of 0 to 5 s is the client's choice (0 is common for
	// devices that send often).
	mqtt.ErrMinimumKeepalive.Error(): true,
	// Logged by mochi for every publish the hook refuses with an MQTT 5
	// reason code; the bridge already counts and logs the rejection.
	"publish packet error": true,
}

// mochi's log messages that say nothing telehub does not log better:
// never passed on. mochi logs "publish packet rejected" for every QoS 1
// publish whose PUBACK the hook writes after the commit (mqtt_acks.go) and
// for every publish left unacknowledged, which the bridge logs itself.
var mqttDroppedMessages = map[string]bool{
	"publish packet rejected": true,
}

// mqttLogHandler is the slog handler of mochi's logs. It makes sure no
// packet contents reach the log (mochi logs whole packets, CONNECT
// passwords and payloads included, in some messages): every value that is
// not a plain string, number, time or error is replaced by a summary. It
// lowers routine messages to debug level and lets one warning of each kind
// through per mqttLogEvery, with the count of those suppressed.
type mqttLogHandler struct {
	inner slog.Handler
	lim   *mqttLogLimiter
}

// newMQTTLogger wraps log for mochi.
func newMQTTLogger(log *slog.Logger, now func() time.Time) *slog.Logger {
	return slog.New(&mqttLogHandler{inner: log.Handler(),
		lim: &mqttLogLimiter{now: now, kinds: make(map[string]*mqttLogKind)}})
}

// Enabled reports whether the inner handler takes records of level.
// Messages lowered to debug are checked again in Handle.
func (h *mqttLogHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

// Handle lowers, limits and cleans the record, then passes it on.
func (h *mqttLogHandler) Handle(ctx context.Context, r slog.Record) error {
	level := r.Level
	if mqttDroppedMessages[r.Message] {
		return nil
	}
	if mqttQuietMessages[r.Message] {
		level = min(level, slog.LevelDebug)
	}
	if !h.inner.Enabled(ctx, level) {
		return nil
	}
	out := slog.NewRecord(r.Time, level, r.Message, r.PC)
	if level >= slog.LevelWarn {
		ok, suppressed := h.lim.allow(r.Message)
		if !ok {
			return nil
		}
		if suppressed > 0 {
			out.AddAttrs(slog.Uint64("suppressed", suppressed))
		}
	}
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(mqttSafeAttr(a))
		return true
	})
	return h.inner.Handle(ctx, out)
}

// WithAttrs returns a handler whose attributes are cleaned the same way.
func (h *mqttLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	safe := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		safe[i] = mqttSafeAttr(a)
	}
	return &mqttLogHandler{inner: h.inner.WithAttrs(safe), lim: h.lim}
}

// WithGroup returns a handler that groups later attributes.
func (h *mqttLogHandler) WithGroup(name string) slog.Handler {
	return &mqttLogHandler{inner: h.inner.WithGroup(name), lim: h.lim}
}

// mqttSafeAttr returns a with any value that could carry packet contents
// replaced by a summary.
func mqttSafeAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		group := v.Group()
		safe := make([]any, len(group))
		for i, g := range group {
			safe[i] = mqttSafeAttr(g)
		}
		return slog.Group(a.Key, safe...)
	case slog.KindAny:
		return slog.String(a.Key, mqttSummary(v.Any()))
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// mqttSummary describes a logged value without its contents: a packet by
// its type and id, an error by its message, anything else by its type.
func mqttSummary(v any) string {
	switch v := v.(type) {
	case packets.Packet:
		return packetSummary(&v)
	case *packets.Packet:
		if v == nil {
			return "<nil>"
		}
		return packetSummary(v)
	case packets.Code:
		return v.Error()
	case error:
		return v.Error()
	}
	return fmt.Sprintf("%T", v)
}

func packetSummary(pk *packets.Packet) string {
	name, ok := packets.PacketNames[pk.FixedHeader.Type]
	if !ok {
		name = fmt.Sprintf("type %d", pk.FixedHeader.Type)
	}
	if pk.PacketID == 0 {
		return name
	}
	return fmt.Sprintf("%s id %d", name, pk.PacketID)
}

// mqttLogLimiter lets one record per message through per mqttLogEvery.
type mqttLogLimiter struct {
	now func() time.Time

	mu    sync.Mutex
	kinds map[string]*mqttLogKind
}

type mqttLogKind struct {
	last       time.Time
	suppressed uint64
}

// allow reports whether a record with message msg may be logged now, and
// how many were suppressed since the last one.
func (l *mqttLogLimiter) allow(msg string) (bool, uint64) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.kinds[msg]
	if k == nil {
		if len(l.kinds) >= mqttLogKinds {
			l.prune(now)
			if len(l.kinds) >= mqttLogKinds {
				return false, 0
			}
		}
		l.kinds[msg] = &mqttLogKind{last: now}
		return true, 0
	}
	if now.Sub(k.last) < mqttLogEvery {
		k.suppressed++
		return false, 0
	}
	n := k.suppressed
	k.last, k.suppressed = now, 0
	return true, n
}

// prune forgets kinds whose window has passed with nothing suppressed.
func (l *mqttLogLimiter) prune(now time.Time) {
	for msg, k := range l.kinds {
		if k.suppressed == 0 && now.Sub(k.last) >= mqttLogEvery {
			delete(l.kinds, msg)
		}
	}
}
