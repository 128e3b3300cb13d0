package firmwaresim

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/telehub/telehub/internal/topic"
)

// ErrInvalidConfig is wrapped by every Config validation error.
var ErrInvalidConfig = errors.New("invalid simulator config")

// Transport says how simulated devices connect to the hub.
type Transport string

// The transports of --transport.
const (
	// TransportWS connects every device over WebSocket.
	TransportWS Transport = "ws"
	// TransportMQTT connects every device over MQTT.
	TransportMQTT Transport = "mqtt"
	// TransportMixed connects even-numbered devices over WebSocket and odd
	// ones over MQTT.
	TransportMixed Transport = "mixed"
)

// String returns the flag form of t.
func (t *Transport) String() string { return string(*t) }

// Set parses the flag form of a transport.
func (t *Transport) Set(s string) error {
	switch Transport(s) {
	case TransportWS, TransportMQTT, TransportMixed:
		*t = Transport(s)
		return nil
	}
	return fmt.Errorf("%w: transport %q is not ws, mqtt or mixed", ErrInvalidConfig, s)
}

// Format is the payload form MQTT devices publish. WebSocket
// devices send "values" frames, or "senml" frames when Format is FormatSenML.
type Format string

// The payload forms of --format.
const (
	// FormatJSON is a flat object of metrics with the reserved keys seq and ts.
	FormatJSON Format = "json"
	// FormatWrapped is {"seq":…,"ts":…,"values":{…}}.
	FormatWrapped Format = "wrapped"
	// FormatSenML is a SenML pack with a base time. It carries no seq, so
	// the hub cannot deduplicate resends: see Summary.Verify.
	FormatSenML Format = "senml"
	// FormatPlain is one publish per metric on devices/{id}/telemetry/{metric},
	// with neither seq nor time: verify can only count events.
	FormatPlain Format = "plain"
)

// String returns the flag form of f.
func (f *Format) String() string { return string(*f) }

// Set parses the flag form of a payload format.
func (f *Format) Set(s string) error {
	switch Format(s) {
	case FormatJSON, FormatWrapped, FormatSenML, FormatPlain:
		*f = Format(s)
		return nil
	}
	return fmt.Errorf("%w: format %q is not json, wrapped, senml or plain", ErrInvalidConfig, s)
}

// qos returns the MQTT QoS of readings.
func (c *Config) qos() byte {
	if c.QoS0 {
		return 0
	}
	return 1
}

// maxRate is the highest --rate: device clocks step at least 2 ms per
// reading so that verify can match SenML readings by time.
const maxRate = 500

// hasSeq reports whether MQTT payloads of the format carry the device seq.
func (f Format) hasSeq() bool { return f == FormatJSON || f == FormatWrapped }

// Config configures a simulation run. The zero value of every field means
// its documented default.
type Config struct {
	// Hub is the hub's HTTP base URL, used for WebSocket devices
	// (ws://…/v1/devices/{id}/ws) and by verify (GET /v1/events).
	// Default "http://127.0.0.1:8080".
	Hub string
	// MQTT is the broker URL of MQTT devices. Default "tcp://127.0.0.1:1883".
	MQTT string
	// Transport is how devices connect. Default TransportWS.
	Transport Transport
	// Format is the MQTT payload form. Default FormatJSON.
	Format Format
	// Devices is the number of simulated devices. Default 1.
	Devices int
	// Rate is the readings per second of each device. Default 1.
	Rate float64
	// Duration is how long devices take readings; 0 means until the context
	// passed to Run is done.
	Duration time.Duration
	// Seed seeds every device's sensor models together with the device's
	// index, so a run is reproducible. 0 is a seed like any other.
	Seed uint64
	// QoS0 publishes MQTT readings at QoS 0 (at most once, no ack). Default
	// false: QoS 1, acknowledged by the hub after the durable commit.
	QoS0 bool
	// IDPrefix prefixes device ids: device n is IDPrefix+n. Default "sim-".
	IDPrefix string
	// Token, when set, authenticates every device without a token of its
	// own (TokenFile, TokenPattern): as a bearer token over WebSocket, and
	// as the MQTT password with the device id as username. Default empty:
	// no credentials.
	Token string
	// TokenFile names a file of per-device tokens, one "<id> <token>" a
	// line (see parseTokenFile). A device it does not list takes
	// TokenPattern or Token, and without them the run refuses to start.
	// Default none.
	TokenFile string
	// TokenPattern makes each device's token from its id: "{id}" is
	// replaced by the device id and "{n}" by its number, as in
	// "secret-{id}". Default none.
	TokenPattern string
	// WatchToken is the watcher (or admin) token of verify's reads and of
	// the watchers' streams. Default empty: none.
	WatchToken string
	// CAFile names PEM certificates to trust, besides the system's, for a
	// hub or broker over TLS (https://, wss://, ssl://). Default none.
	CAFile string
	// InsecureSkipVerify accepts any certificate of a TLS hub or broker:
	// for tests with self-signed certificates only. Default false.
	InsecureSkipVerify bool
	// DropRate is the probability per reading of abruptly closing the
	// device's connection right after sending it. Default 0.
	DropRate float64
	// MalformedRate is the probability per reading of also sending a payload
	// the hub must reject. Default 0.
	MalformedRate float64
	// RebootRate is the probability per reading that the device reboots
	// right after taking it: its connection drops, the readings it had not
	// seen confirmed are lost with its RAM, and its seq starts again at 1
	// in a new seq epoch. Default 0.
	RebootRate float64
	// CommandFailRate is the probability per command the device
	// received of answering it "error" instead of running it. Default 0.
	CommandFailRate float64
	// CommandDelay is how long a device takes to run a command before it
	// answers with the result; a WebSocket device confirms receipt at once
	// (command_ack), an MQTT device with the PUBACK. Default 0.
	CommandDelay time.Duration
	// NoBoot makes devices send no "boot" key: the hub then tells a
	// restarted counter by its later "ts" alone (with NoClock too, it
	// cannot, and readings after a reboot are duplicates). Default false:
	// with a RebootRate, every reading carries the boot id of its epoch,
	// new at each reboot.
	NoBoot bool
	// NoClock simulates devices without a clock: readings carry no "ts".
	// Not with FormatSenML, whose records carry their time. Default false.
	NoClock bool
	// Verify checks after the run that every reading the hub confirmed is
	// stored exactly once (GET /v1/events). Default false.
	Verify bool
	// VerifyHubs are the HTTP base URLs of more hubs checked like Verify
	// checks Hub (after it, with Verify), each in turn: the replicas of a
	// cluster, which must each hold every reading exactly once too. The
	// check waits up to DrainTimeout for a replica to receive the last
	// readings. Default none.
	VerifyHubs []string
	// Silent is how many devices (the last ones) go silent after
	// SilentAfter: no readings, heartbeats or pongs, connection left open,
	// no reconnect. Default 0.
	Silent int
	// SilentAfter is when silent devices stop. Default a third of Duration,
	// or 30 s without a Duration.
	SilentAfter time.Duration
	// Heartbeat is the interval of device heartbeats; negative disables
	// them. Default 10 s.
	Heartbeat time.Duration
	// BufferSize bounds each device's store-and-forward buffer of readings
	// not yet confirmed; when full the oldest is discarded. Default 1024.
	BufferSize int
	// BackoffMin and BackoffMax bound the reconnect backoff (exponential,
	// full jitter). Defaults 100 ms and 5 s.
	BackoffMin, BackoffMax time.Duration
	// ConnectTimeout bounds one connection attempt (dial and handshake).
	// Default 5 s.
	ConnectTimeout time.Duration
	// WriteTimeout bounds one write to a connection; a write that takes
	// longer drops the connection. Default 5 s.
	WriteTimeout time.Duration
	// DrainTimeout bounds the wait for outstanding acks after the readings
	// stop. Default 5 s.
	DrainTimeout time.Duration
	// SeqStart is the first device seq of the run; 0 derives it from the
	// wall clock (Unix milliseconds × 1000) so that a later run's seqs are
	// above an earlier run's and the hub does not take them for resends.
	SeqStart uint64
	// Schedulers is the number of goroutines driving readings and
	// heartbeats of all devices. Default min(GOMAXPROCS, 4).
	Schedulers int
	// Connectors is the number of goroutines making connections. Default 8.
	Connectors int
	// Watchers is the number of watchers that stream the hub's events
	// during the run, each on its own connection, opened before
	// the devices start. Default 0: none.
	Watchers int
	// WatchHub is the HTTP base URL watchers connect to. Default Hub.
	WatchHub string
	// WatchTransport is how watchers connect. Default WatchSSE.
	WatchTransport WatchTransport
	// WatchFilter is the watchers' topic filters, comma-separated. Default
	// DefaultWatchFilter.
	WatchFilter string
	// WatchSettle is how long the watchers must have received nothing,
	// after the devices' last ack, before they stop (bounded by
	// DrainTimeout). Default 500 ms.
	WatchSettle time.Duration
	// MaxProblems bounds how many missing or duplicated readings verify
	// lists. Default 20.
	MaxProblems int
	// Progress, when set, gets a one-line progress report every second.
	// Default nil: no progress.
	Progress io.Writer
	// Logger logs connection trouble. Default: discard.
	Logger *slog.Logger
	// HTTPClient is used by verify. Default: a client with a 30 s timeout
	// and the TLS settings of CAFile and InsecureSkipVerify.
	HTTPClient *http.Client
}

// RegisterFlags binds the simulator's flags to
// c's fields on fs. Defaults shown are those New fills in.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Hub, "hub", "http://127.0.0.1:8080", "hub HTTP base URL")
	fs.StringVar(&c.MQTT, "mqtt", "tcp://127.0.0.1:1883", "MQTT broker URL")
	c.Transport, c.Format = TransportWS, FormatJSON
	fs.Var(&c.Transport, "transport", "device transport: ws, mqtt or mixed")
	fs.Var(&c.Format, "format", "MQTT payload form: json, wrapped, senml or plain")
	c.Devices, c.Rate = 1, 1
	fs.Func("devices", "number of simulated devices, at least 1 (default 1)", positiveInt(&c.Devices, "devices"))
	fs.Func("rate", "readings per second per device, more than 0 and at most 500 (default 1)", positiveFloat(&c.Rate, "rate"))
	durationFlag(fs, &c.Duration, "duration", 10*time.Second, "how long devices take readings (0: until interrupted)")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed of the sensor models")
	fs.Func("qos", "MQTT QoS of readings, 0 or 1 (default 1)", c.setQoS)
	fs.StringVar(&c.IDPrefix, "id-prefix", "sim-", "device id prefix")
	fs.StringVar(&c.Token, "token", "", "device token of every device without its own (WebSocket bearer, MQTT password)")
	fs.StringVar(&c.TokenFile, "token-file", "", `file of per-device tokens, one "<id> <token>" a line`)
	fs.StringVar(&c.TokenPattern, "token-pattern", "", `per-device token made from the id: {id} is the device id, {n} its number (e.g. secret-{id})`)
	fs.StringVar(&c.WatchToken, "watch-token", "", "watcher or admin token of --verify and the watchers")
	fs.StringVar(&c.CAFile, "ca", "", "PEM file of certificates to trust for a TLS hub or broker (https://, ssl://)")
	fs.BoolVar(&c.InsecureSkipVerify, "insecure-skip-verify", false, "accept any certificate of a TLS hub or broker (tests only)")
	fs.Float64Var(&c.DropRate, "drop-rate", 0, "probability per reading of abruptly dropping the connection")
	fs.Float64Var(&c.MalformedRate, "malformed-rate", 0, "probability per reading of also sending a payload the hub must reject")
	fs.Float64Var(&c.RebootRate, "reboot-rate", 0, "probability per reading of a device reboot: connection dropped, unconfirmed readings lost, seq restarted at 1")
	fs.Float64Var(&c.CommandFailRate, "command-fail-rate", 0, "probability per command of answering it failed instead of running it")
	durationFlag(fs, &c.CommandDelay, "command-delay", 0, "time a device takes to run a command before it sends the result (receipt is confirmed at once)")
	fs.BoolFunc("reboot-boot", "send a boot id that changes at every reboot (default true; --reboot-boot=false: the hub must rely on ts)", func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%w: reboot-boot %q is not a boolean", ErrInvalidConfig, v)
		}
		c.NoBoot = !b
		return nil
	})
	fs.BoolVar(&c.NoClock, "no-clock", false, "devices without a clock: readings carry no ts")
	fs.BoolVar(&c.Verify, "verify", false, "after the run, check every confirmed reading is stored exactly once")
	fs.Func("verify-hub", "after the run, check that the hub at this base URL (a cluster replica) stores every confirmed reading exactly once too; repeat the flag or separate URLs by commas", c.addVerifyHubs)
	fs.IntVar(&c.Silent, "silent", 0, "devices that go silent (no readings, heartbeats or pongs) after --silent-after")
	durationFlag(fs, &c.SilentAfter, "silent-after", 0, "when silent devices stop (default a third of --duration)")
	durationFlag(fs, &c.Heartbeat, "heartbeat", 10*time.Second, "heartbeat interval (negative: none)")
	fs.IntVar(&c.BufferSize, "buffer", 1024, "store-and-forward buffer per device (readings)")
	durationFlag(fs, &c.DrainTimeout, "drain-timeout", 5*time.Second, "wait for outstanding acks after the run")
	fs.Uint64Var(&c.SeqStart, "seq-start", 0, "first device seq (0: derived from the clock)")
	c.WatchTransport = WatchSSE
	fs.IntVar(&c.Watchers, "watchers", 0, "watchers streaming the hub's events, opened before the devices start")
	fs.Var(&c.WatchTransport, "watch-transport", "watcher transport: sse or ws")
	fs.StringVar(&c.WatchHub, "watch-hub", "", "HTTP base URL of watchers (default --hub)")
	fs.StringVar(&c.WatchFilter, "watch-filter", DefaultWatchFilter, "watchers' topic filters, comma-separated")
}

func (c *Config) addVerifyHubs(s string) error {
	for u := range strings.SplitSeq(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			c.VerifyHubs = append(c.VerifyHubs, u)
		}
	}
	return nil
}

func (c *Config) setQoS(s string) error {
	switch s {
	case "0", "1":
		c.QoS0 = s == "0"
		return nil
	}
	return fmt.Errorf("%w: qos %q is not 0 or 1", ErrInvalidConfig, s)
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	setDefault(&c.Hub, "http://127.0.0.1:8080")
	setDefault(&c.MQTT, "tcp://127.0.0.1:1883")
	setDefault(&c.Transport, TransportWS)
	setDefault(&c.Format, FormatJSON)
	setDefault(&c.IDPrefix, "sim-")
	setDefault(&c.Devices, 1)
	setDefault(&c.Rate, 1)
	if c.SilentAfter == 0 {
		c.SilentAfter = 30 * time.Second
		if c.Duration > 0 {
			c.SilentAfter = c.Duration / 3
		}
	}
	setDefault(&c.Heartbeat, 10*time.Second)
	setDefault(&c.BufferSize, 1024)
	setDefault(&c.BackoffMin, 100*time.Millisecond)
	setDefault(&c.BackoffMax, 5*time.Second)
	setDefault(&c.ConnectTimeout, 5*time.Second)
	setDefault(&c.WriteTimeout, 5*time.Second)
	setDefault(&c.DrainTimeout, 5*time.Second)
	setDefault(&c.Schedulers, min(runtime.GOMAXPROCS(0), 4))
	setDefault(&c.Connectors, 8)
	setDefault(&c.MaxProblems, 20)
	setDefault(&c.WatchHub, c.Hub)
	setDefault(&c.WatchTransport, WatchSSE)
	setDefault(&c.WatchFilter, DefaultWatchFilter)
	setDefault(&c.WatchSettle, 500*time.Millisecond)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// validate reports the first invalid field of a defaulted config.
func (c *Config) validate() error {
	checks := []struct {
		bad bool
		msg string
	}{
		{c.Devices < 0, "devices must be at least 1"},
		{c.Rate < 0 || c.Rate > maxRate, "rate must be in (0, 500] readings/s"},
		{c.Duration < 0, "duration must not be negative"},
		{c.DropRate < 0 || c.DropRate > 1, "drop-rate must be in [0, 1]"},
		{c.MalformedRate < 0 || c.MalformedRate > 1, "malformed-rate must be in [0, 1]"},
		{c.RebootRate < 0 || c.RebootRate > 1, "reboot-rate must be in [0, 1]"},
		{!(c.CommandFailRate >= 0 && c.CommandFailRate <= 1), "command-fail-rate must be in [0, 1]"},
		{c.CommandDelay < 0, "command-delay must not be negative"},
		{c.NoClock && c.Format == FormatSenML, "no-clock does not go with --format senml (SenML records carry their time)"},
		{c.Silent < 0 || c.Silent > c.Devices, "silent must be in [0, devices]"},
		{c.SilentAfter < 0, "silent-after must not be negative"},
		{c.BufferSize < 1, "buffer must be positive"},
		{c.BackoffMin < 0 || c.BackoffMax < c.BackoffMin, "backoff bounds must satisfy 0 <= min <= max"},
		{c.ConnectTimeout < 0 || c.WriteTimeout < 0 || c.DrainTimeout < 0, "timeouts must not be negative"},
		{c.Schedulers < 1 || c.Connectors < 1 || c.MaxProblems < 1, "schedulers, connectors and max problems must be positive"},
		{!topic.ValidName(c.IDPrefix + "0"), "id-prefix must make device ids that match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
		{c.Watchers < 0, "watchers must not be negative"},
		{c.WatchSettle < 0, "watch settle time must not be negative"},
	}
	for _, ch := range checks {
		if ch.bad {
			return fmt.Errorf("%w: %s", ErrInvalidConfig, ch.msg)
		}
	}
	if err := c.Transport.Set(string(c.Transport)); err != nil {
		return err
	}
	if err := c.Format.Set(string(c.Format)); err != nil {
		return err
	}
	if err := c.WatchTransport.Set(string(c.WatchTransport)); err != nil {
		return err
	}
	if _, err := parseWatchFilter(c.WatchFilter); err != nil {
		return err
	}
	return c.validateURLs()
}

func (c *Config) validateURLs() error {
	urls := []struct{ name, value string }{{"hub", c.Hub}, {"watch-hub", c.WatchHub}}
	for _, u := range c.VerifyHubs {
		urls = append(urls, struct{ name, value string }{"verify-hub", u})
	}
	for _, u := range urls {
		hub, err := url.Parse(u.value)
		if err != nil || (hub.Scheme != "http" && hub.Scheme != "https") || hub.Host == "" {
			return fmt.Errorf("%w: %s %q is not an http(s) URL", ErrInvalidConfig, u.name, u.value)
		}
	}
	broker, err := url.Parse(c.MQTT)
	if err != nil || (broker.Scheme != "tcp" && broker.Scheme != "mqtt" && !isTLSBroker(broker.Scheme)) || broker.Host == "" {
		return fmt.Errorf("%w: mqtt %q is not a tcp:// or ssl:// URL", ErrInvalidConfig, c.MQTT)
	}
	return nil
}

// wsURL returns the WebSocket device endpoint of device id on hub.
func wsURL(hub, id string) string { return wsBase(hub) + "/v1/devices/" + id + "/ws" }

// wsBase returns the hub's base URL with the matching WebSocket scheme.
func wsBase(hub string) string {
	u := strings.TrimSuffix(hub, "/")
	switch {
	case strings.HasPrefix(u, "https://"):
		u = "wss://" + strings.TrimPrefix(u, "https://")
	case strings.HasPrefix(u, "http://"):
		u = "ws://" + strings.TrimPrefix(u, "http://")
	}
	return u
}
