package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telehub/telehub/internal/jsonx"
	"github.com/telehub/telehub/internal/logx"
	"github.com/telehub/telehub/internal/metrics"
	"github.com/telehub/telehub/internal/topic"
)

// Errors of New and of the Bridge methods (besides the *Error rejections of
// invalid input).
var (
	// ErrNoStore: Config.Store is nil.
	ErrNoStore = errors.New("bridge: config has no store")
	// ErrBadConfig: a Config field is out of range.
	ErrBadConfig = errors.New("bridge: invalid config")
	// ErrBadPresence: a presence change with an unknown transport or
	// reason.
	ErrBadPresence = errors.New("bridge: invalid presence")
	// ErrBadOrigin: a peer's write whose origin does not name one id per
	// event.
	ErrBadOrigin = errors.New("bridge: invalid origin")
)

// Store is what the bridge needs from storage.
//
// Submit enqueues w for the next group commit and may block while the
// store's queue is full. When it returns nil the store calls w.Done (when
// set) exactly once after the commit; when it returns an error nothing is
// stored and w.Done is never called.
type Store interface {
	Submit(w *Write) error
}

// Config configures a Bridge.
type Config struct {
	// Store receives every Write. Required.
	Store Store
	// Logger logs rejections (at a rate limit) and store failures.
	// Default: a logger that discards everything.
	Logger *slog.Logger
	// Metrics receives the counters. Default: a fresh private set.
	Metrics *metrics.Metrics
	// ErrorRate is how many error events per second a device may cause;
	// more are suppressed and counted. Default: 1.
	ErrorRate float64
	// ErrorBurst is how many error events a device may cause at once
	// before ErrorRate applies. Default: 5.
	ErrorBurst int
	// DeviceRate is how many telemetry messages per second one device may
	// send. Transports that can pause a device slow it down to this rate
	// (Pace); Telemetry refuses a message over it with CodeRateLimited only
	// when it was not paced and carries no seq. Default: 0, no limit.
	DeviceRate float64
	// DeviceBurst is how many messages a device may send at once before
	// DeviceRate applies. Default: twice DeviceRate, at least 1.
	DeviceBurst int
	// Now is the clock, for rate limits and missing receive times.
	// Default: time.Now.
	Now func() time.Time
	// Forward, when set (cluster mode), makes the message for the peer
	// hubs of each write this hub alone sees. Default nil: a single hub.
	Forward Forwarder
}

// Defaults of Config.
const (
	DefaultErrorRate  = 1.0
	DefaultErrorBurst = 5
)

// Rejection logs: at most logBurst lines at once, then one per logEvery.
const (
	logEvery = time.Second
	logBurst = 10
)

// Bridge turns parsed device payloads, rejections and presence changes into
// events with their data JSON encoded once, and submits them to the store.
// It is safe for concurrent use.
type Bridge struct {
	store   Store
	log     *slog.Logger
	now     func() time.Time
	forward Forwarder

	errLimit *limiter // per-device error events
	msgLimit *limiter // per-device telemetry messages; nil: no limit

	logMu     sync.Mutex
	logBucket bucket // rejection log lines, all devices together

	rejected           map[string]prometheus.Counter // by wire code
	suppressed         prometheus.Counter
	throttled          prometheus.Counter
	telemetryIngested  prometheus.Counter
	presenceIngested   prometheus.Counter
	errorIngested      prometheus.Counter
	presenceChangesVec *prometheus.CounterVec
}

// New returns a Bridge for cfg, with defaults filled in. It fails with
// ErrNoStore or ErrBadConfig.
func New(cfg Config) (*Bridge, error) {
	if cfg.Store == nil {
		return nil, ErrNoStore
	}
	if err := cfg.fillDefaults(); err != nil {
		return nil, err
	}
	m := metrics.OrNew(cfg.Metrics)
	b := &Bridge{
		store:              cfg.Store,
		log:                cfg.Logger,
		now:                cfg.Now,
		forward:            cfg.Forward,
		errLimit:           newLimiter(cfg.ErrorRate, cfg.ErrorBurst, limiterMaxEntries),
		logBucket:          bucket{tokens: logBurst},
		rejected:           make(map[string]prometheus.Counter),
		suppressed:         m.ErrorsSuppressed,
		throttled:          m.Throttled,
		telemetryIngested:  m.EventsIngested.WithLabelValues(KindTelemetry.String()),
		presenceIngested:   m.EventsIngested.WithLabelValues(KindPresence.String()),
		errorIngested:      m.EventsIngested.WithLabelValues(KindError.String()),
		presenceChangesVec: m.PresenceChanges,
	}
	for _, code := range []string{CodeBadRequest, CodePayloadTooLarge, CodeForbidden, CodeRateLimited, CodeInternal, CodeStorageFull} {
		b.rejected[code] = m.Rejected.WithLabelValues(code)
	}
	if cfg.DeviceRate > 0 {
		b.msgLimit = newLimiter(cfg.DeviceRate, cfg.DeviceBurst, limiterMaxEntries)
		b.msgLimit.failOpen = true // more active devices than tracked: never refuse for that
	}
	return b, nil
}

// fillDefaults validates cfg and fills the zero fields with defaults.
func (cfg *Config) fillDefaults() error {
	switch {
	case cfg.ErrorRate == 0:
		cfg.ErrorRate = DefaultErrorRate
	case cfg.ErrorRate < 0 || math.IsNaN(cfg.ErrorRate) || math.IsInf(cfg.ErrorRate, 0):
		return fmt.Errorf("%w: ErrorRate %v must be a positive number", ErrBadConfig, cfg.ErrorRate)
	}
	switch {
	case cfg.ErrorBurst == 0:
		cfg.ErrorBurst = DefaultErrorBurst
	case cfg.ErrorBurst < 0:
		return fmt.Errorf("%w: ErrorBurst %d must be positive", ErrBadConfig, cfg.ErrorBurst)
	}
	switch {
	case cfg.DeviceRate < 0 || math.IsNaN(cfg.DeviceRate) || math.IsInf(cfg.DeviceRate, 0):
		return fmt.Errorf("%w: DeviceRate %v must be 0 (no limit) or a positive number", ErrBadConfig, cfg.DeviceRate)
	case cfg.DeviceBurst < 0:
		return fmt.Errorf("%w: DeviceBurst %d must be positive", ErrBadConfig, cfg.DeviceBurst)
	case cfg.DeviceBurst == 0:
		cfg.DeviceBurst = max(1, int(math.Ceil(2*cfg.DeviceRate)))
	}
	cfg.Logger = logx.Or(cfg.Logger)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return nil
}

// Telemetry builds one telemetry/{device}/{metric} event per reading of p
// (data and latest-state JSON encoded here, once) and submits them as one
// Write: Device, Transport and Seen from in (Seen is the bridge's clock when
// in.Received is zero), Seq, HasSeq, Boot and DeviceTime from p, and done
// as its Done. It
// does not wait for the commit.
//
// An invalid device id, an empty payload, an invalid metric name or a
// non-finite number is rejected with an *Error before anything is
// submitted, and so is a message over the device's rate limit
// (CodeRateLimited) when in is not Paced and p has no seq: refusing a
// reading with a seq while later ones are stored would make its resend
// look like a duplicate. A store failure is returned wrapped. In all these cases
// done is never called, and the caller records the rejection (Reject).
//
// In a cluster, a message of a peer hub (in.Origin set) gets its origin in
// every event's data and is never refused for the rate; a message of this
// hub gets the Forwarder's message for the peers, if any.
func (b *Bridge) Telemetry(in Input, p Payload, done func(Result)) error {
	if err := checkTelemetry(in.Device, &p); err != nil {
		return err
	}
	seen := b.seen(in.Received)
	if err := b.checkRate(in, &p, seen); err != nil {
		return err
	}
	w := &Write{
		Device:     in.Device,
		Transport:  in.Transport,
		Seen:       seen,
		Seq:        p.Seq,
		HasSeq:     p.HasSeq,
		Boot:       p.Boot,
		DeviceTime: p.Time,
		Events:     buildTelemetry(in.Device, seen, &p),
		Done:       done,
	}
	if err := b.route(w, &in, &p); err != nil {
		return err
	}
	if err := b.store.Submit(w); err != nil {
		return fmt.Errorf("bridge: submit %d telemetry events of device %s: %w", len(w.Events), in.Device, err)
	}
	b.telemetryIngested.Add(float64(len(w.Events)))
	return nil
}

// route marks a write of a peer hub with its origin, or gives a write of
// this hub its message for the peers.
func (b *Bridge) route(w *Write, in *Input, p *Payload) error {
	switch {
	case in.Origin != nil:
		return withOrigin(w, in.Origin)
	case b.forward != nil:
		in.Received = w.Seen // the receive time the events carry
		w.Outbox = b.forward.Telemetry(in, p)
	}
	return nil
}

// checkRate counts a message that was not paced against its device's
// rate and refuses it with CodeRateLimited when it is over the rate and
// has no seq. One with a seq is counted (its device's later messages
// without seq are refused sooner) but never refused.
func (b *Bridge) checkRate(in Input, p *Payload, seen time.Time) error {
	switch {
	case b.msgLimit == nil || in.Paced || in.Origin != nil: // a peer paced it
		return nil
	case p.HasSeq:
		b.msgLimit.reserve(in.Device, seen, maxPace)
		return nil
	}
	if ok, _ := b.msgLimit.allow(in.Device, seen); !ok {
		return &Error{Code: CodeRateLimited, Message: fmt.Sprintf(
			"device %s sends more than %g messages a second: reading not stored", in.Device, b.msgLimit.rate)}
	}
	return nil
}

// Pace takes one message of device's rate limit at now and returns how
// long the transport must wait before handing the message to Telemetry
// (with Input.Paced set): 0 within the rate. A transport that waits before
// reading the device's next message slows the device down instead of
// refusing its readings. A wait is at most maxPace, or 1/DeviceRate when
// that is longer. Messages that must wait are counted as throttled.
func (b *Bridge) Pace(device string, now time.Time) time.Duration {
	if b.msgLimit == nil {
		return 0
	}
	d := b.msgLimit.reserve(device, now, maxPace)
	if d > 0 {
		b.throttled.Inc()
	}
	return d
}

// seen returns received, or the bridge's clock when it is zero.
func (b *Bridge) seen(received time.Time) time.Time {
	if received.IsZero() {
		return b.now()
	}
	return received
}

// checkTelemetry validates what Telemetry is given.
func checkTelemetry(device string, p *Payload) error {
	if err := validDeviceID(device); err != nil {
		return err
	}
	if len(p.Readings) == 0 {
		return errNoReadings()
	}
	for i := range p.Readings {
		rd := &p.Readings[i]
		if err := validMetric(rd.Metric); err != nil {
			return err
		}
		switch v := rd.Value; {
		case v.Kind == Number && (math.IsNaN(v.Num) || math.IsInf(v.Num, 0)):
			return Errorf("value of %s: not a finite number", jsonx.Quote(rd.Metric))
		case v.Kind != Number && v.Kind != String && v.Kind != Bool:
			return Errorf("value of %s: no value", jsonx.Quote(rd.Metric))
		}
	}
	return nil
}

// buildTelemetry returns the events of p's readings.
func buildTelemetry(device string, seen time.Time, p *Payload) []Event {
	enc := newEventEncoder(device, p)
	for i := range p.Readings {
		enc.add(&p.Readings[i], seen, p)
	}
	return enc.events(p)
}

// eventEncoder encodes the topics, data and state of one payload's events
// into two buffers, so that all Data and State bytes share one allocation
// and all topics one string.
type eventEncoder struct {
	device string
	topics []byte
	buf    []byte
	ends   []int     // end of each Data, then of each State, in buf
	ts     []byte    // the formatted time of tsOf
	tsOf   time.Time // the time ts holds
}

// newEventEncoder returns an encoder sized for p.
func newEventEncoder(device string, p *Payload) eventEncoder {
	topicLen, size := 0, 0
	for i := range p.Readings {
		rd := &p.Readings[i]
		topicLen += len(topic.TelemetryRoot) + len(device) + 1 + len(rd.Metric)
		size += 200 + 2*(len(device)+len(rd.Metric)+len(rd.Unit)+len(rd.Value.Str))
	}
	return eventEncoder{
		device: device,
		topics: make([]byte, 0, topicLen),
		buf:    make([]byte, 0, size),
		ends:   make([]int, 0, 2*len(p.Readings)),
	}
}

// add encodes the topic, data and state of one reading.
func (enc *eventEncoder) add(rd *Reading, seen time.Time, p *Payload) {
	t := rd.Time
	if t.IsZero() {
		t = seen
	}
	if enc.ts == nil || !t.Equal(enc.tsOf) {
		enc.ts, enc.tsOf = AppendTime(enc.ts[:0], t), t
	}
	start := len(enc.topics)
	enc.topics = append(enc.topics, topic.TelemetryRoot...)
	enc.topics = append(enc.topics, enc.device...)
	enc.topics = append(enc.topics, '/')
	enc.topics = append(enc.topics, rd.Metric...)
	enc.buf = appendTelemetryData(enc.buf, enc.topics[start:], enc.device, rd, enc.ts, p)
	enc.ends = append(enc.ends, len(enc.buf))
	enc.buf = appendState(enc.buf, rd, enc.ts)
	enc.ends = append(enc.ends, len(enc.buf))
}

// events slices the buffers into the events, each Data and State capped so
// that an append to one cannot overwrite the next.
func (enc *eventEncoder) events(p *Payload) []Event {
	events := make([]Event, len(p.Readings))
	all := string(enc.topics)
	at, prev := 0, 0
	for i := range events {
		rd := &p.Readings[i]
		t := all[at : at+len(topic.TelemetryRoot)+len(enc.device)+1+len(rd.Metric)]
		at += len(t)
		dataEnd, stateEnd := enc.ends[2*i], enc.ends[2*i+1]
		events[i] = Event{
			Kind:   KindTelemetry,
			Topic:  t,
			Device: enc.device,
			Metric: rd.Metric,
			Data:   enc.buf[prev:dataEnd:dataEnd],
			State:  enc.buf[dataEnd:stateEnd:stateEnd],
		}
		prev = stateEnd
	}
	return events
}

// Reject records a device payload the hub refused: it counts it in
// metrics.Rejected by code, logs it at a rate limit, and unless the
// per-device error rate limit suppresses it, submits an errors/{device}
// event {"topic","device","code","message","source_topic","suppressed","ts"}
// with ts from in.Received. err is usually an *Error; any other error counts
// as CodeBadRequest with its text as the message.
//
// The Rejection says whether the device should get an error answer now. An
// invalid device id is never turned into a topic: it is counted and logged
// only, and Answer is false. A failure to submit the error event is logged;
// the device is still answered.
func (b *Bridge) Reject(in Input, err error) Rejection {
	code, msg := errorParts(err)
	b.rejected[code].Inc()
	now := b.now()
	if validDeviceID(in.Device) != nil {
		b.logReject(in, code, msg, now)
		return Rejection{}
	}
	allowed, suppressed := b.errLimit.allow(in.Device, now)
	b.logReject(in, code, msg, now)
	if !allowed {
		b.suppressed.Inc()
		return Rejection{Suppressed: suppressed}
	}
	b.submitError(in, &errorData{
		topic: topic.Errors(in.Device), device: in.Device, code: code, message: msg,
		source: in.SourceTopic, suppressed: suppressed, at: b.seen(in.Received),
	})
	return Rejection{Answer: true, Suppressed: suppressed}
}

// maxMessage bounds the message of an error event or answer.
const maxMessage = 512

// errorParts returns the wire code and message of err; codes telehub does
// not know become CodeBadRequest.
func errorParts(err error) (code, msg string) {
	code = CodeBadRequest
	if err == nil {
		return code, "rejected"
	}
	msg = err.Error()
	var e *Error
	if errors.As(err, &e) {
		switch e.Code {
		case CodeBadRequest, CodePayloadTooLarge, CodeForbidden, CodeRateLimited, CodeInternal, CodeStorageFull:
			code = e.Code
		}
		msg = e.Message
	}
	if len(msg) > maxMessage {
		msg = jsonx.Truncate(msg, maxMessage) + "..."
	}
	return code, msg
}

// submitError submits one error event.
func (b *Bridge) submitError(in Input, e *errorData) {
	w := &Write{
		Device:    in.Device,
		Transport: in.Transport,
		Seen:      e.at,
		Events: []Event{{
			Kind:   KindError,
			Topic:  e.topic,
			Device: in.Device,
			Data:   e.encode(),
		}},
	}
	if err := b.store.Submit(w); err != nil {
		b.log.Warn("bridge: store error event", "device", in.Device, "err", err)
		return
	}
	b.errorIngested.Inc()
}

// logReject logs a rejection unless the log rate limit holds it back; the
// next line that goes out says how many were skipped.
func (b *Bridge) logReject(in Input, code, msg string, now time.Time) {
	if !b.log.Enabled(context.Background(), slog.LevelWarn) {
		return
	}
	b.logMu.Lock()
	b.logBucket.refill(now, 1/logEvery.Seconds(), logBurst)
	ok, skipped := b.logBucket.take()
	b.logMu.Unlock()
	if !ok {
		return
	}
	b.log.Warn("rejected device payload",
		"device", jsonx.Truncate(in.Device, jsonx.MaxQuoted),
		"transport", in.Transport,
		"source_topic", jsonx.Truncate(in.SourceTopic, jsonx.MaxQuoted),
		"code", code,
		"message", msg,
		"log_lines_skipped", skipped)
}

// Presence submits the presence/{device} event of a liveness change, data
// {"topic","device","online","transport","reason","session","ts"} with ts =
// at, as a Write with Presence set (Seen = at, the bridge's clock when at is
// zero) and done as its Done. It counts metrics.PresenceChanges by reason.
// An invalid device id is an *Error; an unknown transport or reason is
// ErrBadPresence; a store failure is returned wrapped. done is then never
// called.
func (b *Bridge) Presence(device string, p Presence, at time.Time, done func(Result)) error {
	return b.presence(device, p, at, nil, done)
}

// PeerPresence is Presence for a liveness change a peer hub forwarded:
// the event's data carries o.
func (b *Bridge) PeerPresence(device string, p Presence, at time.Time, o *Origin, done func(Result)) error {
	return b.presence(device, p, at, o, done)
}

// presence builds and submits a presence write, from a peer when o is set.
func (b *Bridge) presence(device string, p Presence, at time.Time, o *Origin, done func(Result)) error {
	if err := validDeviceID(device); err != nil {
		return err
	}
	if err := checkPresence(&p); err != nil {
		return err
	}
	at = b.seen(at)
	presenceTopic := topic.Presence(device)
	w := &Write{
		Device:    device,
		Transport: p.Transport,
		Seen:      at,
		Events: []Event{{
			Kind:   KindPresence,
			Topic:  presenceTopic,
			Device: device,
			Data:   presenceData(presenceTopic, device, &p, at),
		}},
		Presence: &p,
		Done:     done,
	}
	switch {
	case o != nil:
		if err := withOrigin(w, o); err != nil {
			return err
		}
	case b.forward != nil:
		w.Outbox = b.forward.Presence(device, &p, at)
	}
	if err := b.store.Submit(w); err != nil {
		return fmt.Errorf("bridge: submit presence of device %s: %w", device, err)
	}
	b.presenceIngested.Inc()
	b.presenceChangesVec.WithLabelValues(p.Reason).Inc()
	return nil
}

// checkPresence validates a presence change's transport and reason.
func checkPresence(p *Presence) error {
	switch p.Transport {
	case TransportWS, TransportMQTT:
	default:
		return fmt.Errorf("%w: transport %q", ErrBadPresence, p.Transport)
	}
	switch p.Reason {
	case ReasonConnect, ReasonDisconnect, ReasonTimeout, ReasonWill, ReasonMessage:
		return nil
	}
	return fmt.Errorf("%w: reason %q", ErrBadPresence, p.Reason)
}
