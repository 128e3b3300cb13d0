package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// option is one setting reachable as a flag, an environment variable and a
// YAML key (the struct tag of its Config field).
type option struct {
	name  string // flag name; the variable is TELEHUB_ + NAME with - as _
	usage string
	bool  bool
	set   func(c *Config, s string) error
}

func (o option) env() string {
	return "TELEHUB_" + strings.ToUpper(strings.ReplaceAll(o.name, "-", "_"))
}

func str(name, usage string, field func(*Config) *string) option {
	return option{name: name, usage: usage, set: func(c *Config, s string) error {
		*field(c) = s
		return nil
	}}
}

func boolean(name, usage string, field func(*Config) *bool) option {
	return option{name: name, usage: usage, bool: true, set: func(c *Config, s string) error {
		v, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not a boolean", s)
		}
		*field(c) = v
		return nil
	}}
}

func integer(name, usage string, field func(*Config) *int) option {
	return option{name: name, usage: usage, set: func(c *Config, s string) error {
		v, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		*field(c) = v
		return nil
	}}
}

func float(name, usage string, field func(*Config) *float64) option {
	return option{name: name, usage: usage, set: func(c *Config, s string) error {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		*field(c) = v
		return nil
	}}
}

func duration(name, usage string, field func(*Config) *time.Duration) option {
	return option{name: name, usage: usage, set: func(c *Config, s string) error {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration (like 45s or 24h)", s)
		}
		*field(c) = v
		return nil
	}}
}

// list options take one value per flag (repeatable) or a comma-separated
// environment variable.
func list(name, usage string, field func(*Config) *[]string) option {
	return option{name: name, usage: usage, set: func(c *Config, s string) error {
		for _, v := range strings.Split(s, ",") {
			if v = strings.TrimSpace(v); v != "" {
				*field(c) = append(*field(c), v)
			}
		}
		return nil
	}}
}

var options = []option{
	str("http-addr", "HTTP listen address (REST, watchers, WebSocket devices, dashboard)", func(c *Config) *string { return &c.HTTPAddr }),
	str("mqtt-addr", "embedded MQTT broker listen address; empty disables it", func(c *Config) *string { return &c.MQTTAddr }),
	str("mqtt-broker", "external MQTT broker URL (tcp://host:port); disables the embedded broker", func(c *Config) *string { return &c.MQTTBroker }),
	str("mqtt-client-id", "client id on the external broker (default telehub-<store identity>)", func(c *Config) *string { return &c.MQTTClientID }),
	str("mqtt-share-group", "external broker: subscribe through $share/<group>/ to split devices among hubs", func(c *Config) *string { return &c.MQTTShareGroup }),
	str("mqtt-username", "username on the external broker", func(c *Config) *string { return &c.MQTTUsername }),
	str("mqtt-password", "password on the external broker", func(c *Config) *string { return &c.MQTTPassword }),
	str("data-dir", "data directory (holds telehub.db)", func(c *Config) *string { return &c.DataDir }),
	boolean("fsync", "fsync every group commit; false trades durability for speed", func(c *Config) *bool { return &c.Fsync }),
	integer("max-events", "retained events at most", func(c *Config) *int { return &c.MaxEvents }),
	duration("max-age", "retained events at most this old", func(c *Config) *time.Duration { return &c.MaxAge }),
	integer("max-bytes", "the largest the data file may grow, in bytes; at the cap readings are refused as on a full disk (0: no cap)", func(c *Config) *int { return &c.MaxBytes }),
	duration("device-timeout", "a device with nothing heard for this long goes offline", func(c *Config) *time.Duration { return &c.DeviceTimeout }),
	duration("heartbeat-interval", "pings to devices and watchers", func(c *Config) *time.Duration { return &c.HeartbeatInterval }),
	integer("max-payload", "max bytes of a WebSocket frame or MQTT payload", func(c *Config) *int { return &c.MaxPayload }),
	float("device-rate", "telemetry messages per second one device may send; 0 means no limit", func(c *Config) *float64 { return &c.DeviceRate }),
	integer("device-burst", "messages a device may send at once before --device-rate applies (0: twice the rate)", func(c *Config) *int { return &c.DeviceBurst }),
	integer("watcher-queue", "events a watcher may fall behind before it is disconnected", func(c *Config) *int { return &c.WatcherQueue }),
	list("allowed-origin", "Origin allowed to open watcher WebSockets (repeatable)", func(c *Config) *[]string { return &c.AllowedOrigins }),
	str("tls-cert", "TLS certificate file (HTTPS/WSS and MQTTS)", func(c *Config) *string { return &c.TLSCert }),
	str("tls-key", "TLS key file", func(c *Config) *string { return &c.TLSKey }),
	boolean("insecure", "allow listening beyond loopback without credentials (logs a warning)", func(c *Config) *bool { return &c.Insecure }),
	str("admin-token", "admin API token, plain or sha256:<hex> (prefer the environment or the file: flags show in ps)", func(c *Config) *string { return &c.AdminToken }),
	str("debug-addr", "serve pprof on this address; empty disables it", func(c *Config) *string { return &c.DebugAddr }),
	str("log-level", "debug, info, warn or error", func(c *Config) *string { return &c.LogLevel }),
	str("log-format", "text or json", func(c *Config) *string { return &c.LogFormat }),
}

// ErrHelp is returned by Load when -h or --help was asked for; the usage
// has been written.
var ErrHelp = flag.ErrHelp

// Load builds the configuration from args (without the program name), the
// environment (getenv, usually os.Getenv) and the YAML file named by
// --config or TELEHUB_CONFIG. Precedence: flags > environment > file >
// defaults. Usage and flag errors are written to out. The result is
// validated.
func Load(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	fs := flag.NewFlagSet("telehub", flag.ContinueOnError)
	fs.SetOutput(out)
	var file string
	fs.StringVar(&file, "config", "", "YAML configuration file (env TELEHUB_CONFIG)")
	type setting struct {
		opt   option
		value string
	}
	var given []setting
	var scratch Config // checks each flag's value as it is parsed
	for _, o := range options {
		record := func(s string) error {
			if err := o.set(&scratch, s); err != nil {
				return err
			}
			given = append(given, setting{o, s})
			return nil
		}
		usage := fmt.Sprintf("%s (env %s)", o.usage, o.env())
		if o.bool {
			fs.BoolFunc(o.name, usage, record)
		} else {
			fs.Func(o.name, usage, record)
		}
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	cfg := Default()
	if file == "" {
		file = getenv("TELEHUB_CONFIG")
	}
	if file != "" {
		if err := loadFile(&cfg, file); err != nil {
			return Config{}, err
		}
	}
	for _, o := range options {
		if v, ok := lookup(getenv, o.env()); ok {
			if err := o.set(&cfg, v); err != nil {
				return Config{}, fmt.Errorf("%s: %w", o.env(), err)
			}
		}
	}
	flagLists := map[string]bool{}
	for _, s := range given {
		if p := listField(&cfg, s.opt.name); p != nil && !flagLists[s.opt.name] {
			*p = nil // flags replace, not extend, the list from env or file
			flagLists[s.opt.name] = true
		}
		if err := s.opt.set(&cfg, s.value); err != nil {
			return Config{}, fmt.Errorf("--%s: %w", s.opt.name, err)
		}
	}
	return cfg, cfg.Validate()
}

func listField(c *Config, name string) *[]string {
	if name == "allowed-origin" {
		return &c.AllowedOrigins
	}
	return nil
}

func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

// loadFile decodes the YAML file at path over cfg; unknown keys are errors.
func loadFile(cfg *Config, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}
