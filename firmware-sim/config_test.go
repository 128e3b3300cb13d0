package firmwaresim

import (
	"errors"
	"flag"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"negative devices", func(c *Config) { c.Devices = -1 }, "devices"},
		{"negative rate", func(c *Config) { c.Rate = -1 }, "rate"},
		{"rate too high", func(c *Config) { c.Rate = 501 }, "rate"},
		{"negative duration", func(c *Config) { c.Duration = -time.Second }, "duration"},
		{"drop rate over 1", func(c *Config) { c.DropRate = 1.5 }, "drop-rate"},
		{"negative malformed rate", func(c *Config) { c.MalformedRate = -0.1 }, "malformed-rate"},
		{"reboot rate over 1", func(c *Config) { c.RebootRate = 2 }, "reboot-rate"},
		{"command fail rate over 1", func(c *Config) { c.CommandFailRate = 1.01 }, "command-fail-rate"},
		{"negative command fail rate", func(c *Config) { c.CommandFailRate = -0.5 }, "command-fail-rate"},
		{"NaN command fail rate", func(c *Config) { c.CommandFailRate = math.NaN() }, "command-fail-rate"},
		{"negative command delay", func(c *Config) { c.CommandDelay = -time.Millisecond }, "command-delay"},
		{"no clock with senml", func(c *Config) { c.NoClock, c.Format = true, FormatSenML }, "no-clock"},
		{"more silent than devices", func(c *Config) { c.Devices, c.Silent = 2, 3 }, "silent"},
		{"negative silent-after", func(c *Config) { c.SilentAfter = -time.Second }, "silent-after"},
		{"negative buffer", func(c *Config) { c.BufferSize = -1 }, "buffer"},
		{"backoff max below min", func(c *Config) { c.BackoffMin, c.BackoffMax = time.Second, time.Millisecond }, "backoff"},
		{"negative timeout", func(c *Config) { c.DrainTimeout = -1 }, "timeouts"},
		{"negative schedulers", func(c *Config) { c.Schedulers = -1 }, "schedulers"},
		{"bad id prefix", func(c *Config) { c.IDPrefix = "a/b" }, "id-prefix"},
		{"long id prefix", func(c *Config) { c.IDPrefix = strings.Repeat("a", 64) }, "id-prefix"},
		{"unknown transport", func(c *Config) { c.Transport = "carrier-pigeon" }, "transport"},
		{"unknown format", func(c *Config) { c.Format = "xml" }, "format"},
		{"hub not http", func(c *Config) { c.Hub = "ftp://x" }, "hub"},
		{"hub without host", func(c *Config) { c.Hub = "http://" }, "hub"},
		{"mqtt not tcp", func(c *Config) { c.MQTT = "http://127.0.0.1:1883" }, "mqtt"},
		{"verify hub not http", func(c *Config) { c.VerifyHubs = []string{"tcp://127.0.0.1:1"} }, "verify-hub"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg Config
			tt.mod(&cfg)
			_, err := New(cfg)
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want ErrInvalidConfig about %q", err, tt.want)
			}
		})
	}
}

func TestNewFillsDefaults(t *testing.T) {
	s, err := New(Config{Duration: 9 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c := s.cfg
	if c.Hub != "http://127.0.0.1:8080" || c.MQTT != "tcp://127.0.0.1:1883" || c.Transport != TransportWS ||
		c.Format != FormatJSON || c.Devices != 1 || c.Rate != 1 || c.IDPrefix != "sim-" || c.qos() != 1 ||
		c.SilentAfter != 3*time.Second || c.Heartbeat != 10*time.Second || c.BufferSize != 1024 ||
		c.Logger == nil || c.HTTPClient == nil {
		t.Fatalf("defaults not filled: %+v", c)
	}
	if s.DeviceID(7) != "sim-7" || len(s.devices) != 1 {
		t.Fatalf("device ids: %q, %d devices", s.DeviceID(7), len(s.devices))
	}
}

func TestRegisterFlags(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.RegisterFlags(fs)
	err := fs.Parse([]string{"--transport", "mixed", "--format", "senml", "--qos", "0", "--devices", "5",
		"--rate", "2.5", "--drop-rate", "0.1", "--verify", "--id-prefix", "x-"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Transport != TransportMixed || cfg.Format != FormatSenML || !cfg.QoS0 || cfg.Devices != 5 ||
		cfg.Rate != 2.5 || cfg.DropRate != 0.1 || !cfg.Verify || cfg.IDPrefix != "x-" {
		t.Fatalf("flags parsed into %+v", cfg)
	}
	cfg = Config{}
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse([]string{"--reboot-rate", "0.01", "--reboot-boot=false", "--no-clock",
		"--command-fail-rate", "0.25", "--command-delay", "150ms"}); err != nil {
		t.Fatal(err)
	}
	if cfg.RebootRate != 0.01 || !cfg.NoBoot || !cfg.NoClock || cfg.CommandFailRate != 0.25 || cfg.CommandDelay != 150*time.Millisecond {
		t.Fatalf("reboot and command flags parsed into %+v", cfg)
	}
	for _, bad := range [][]string{{"--qos", "2"}, {"--transport", "udp"}, {"--format", "cbor"}, {"--reboot-boot=maybe"},
		{"--command-delay", "150"}, {"--command-fail-rate", "often"}} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var c Config
		c.RegisterFlags(fs)
		if err := fs.Parse(bad); err == nil {
			t.Errorf("flags %v accepted", bad)
		}
	}
}

func TestMixedTransportAlternates(t *testing.T) {
	s, err := New(Config{Devices: 4, Transport: TransportMixed, Silent: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := []Transport{TransportWS, TransportMQTT, TransportWS, TransportMQTT}
	for i, d := range s.devices {
		if d.tr != want[i] || d.silent != (i == 3) {
			t.Fatalf("device %d: transport %s silent %v", i, d.tr, d.silent)
		}
	}
}

func TestWSURL(t *testing.T) {
	tests := []struct{ hub, want string }{
		{"http://127.0.0.1:8080", "ws://127.0.0.1:8080/v1/devices/d1/ws"},
		{"https://hub.example/", "wss://hub.example/v1/devices/d1/ws"},
	}
	for _, tt := range tests {
		if got := wsURL(tt.hub, "d1"); got != tt.want {
			t.Errorf("wsURL(%q) = %q, want %q", tt.hub, got, tt.want)
		}
	}
}

func TestRunTwice(t *testing.T) {
	s, err := New(Config{Hub: "http://127.0.0.1:1", Duration: time.Millisecond, DrainTimeout: time.Millisecond,
		ConnectTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(t.Context()); !errors.Is(err, ErrNoConnection) {
		t.Fatalf("first Run: %v, want ErrNoConnection", err)
	}
	if _, err := s.Run(t.Context()); !errors.Is(err, ErrAlreadyRun) {
		t.Fatalf("second Run: %v, want ErrAlreadyRun", err)
	}
}
