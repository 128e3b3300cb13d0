package config

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Each error says what is wrong and how to fix it, in the words of the
// flags and the file, never in Go types.
func TestErrorMessages(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		file string
		want []string // every one must appear
		not  []string // none may appear
	}{
		{name: "address without port", args: []string{"--http-addr", "foo"},
			want: []string{`http_addr "foo" has no port`, "like 127.0.0.1:8080"}, not: []string{"loopback"}},
		{name: "address with empty port", args: []string{"--mqtt-addr", "127.0.0.1:"},
			want: []string{`mqtt_addr "127.0.0.1:" has no port after the colon`, "127.0.0.1:8080"}},
		{name: "port out of range", args: []string{"--http-addr", "127.0.0.1:99999"},
			want: []string{`port "99999"`, "0 to 65535"}},
		{name: "bare IPv6", args: []string{"--http-addr", "::1:80"}, want: []string{"brackets"}},
		{name: "debug address without port", args: []string{"--debug-addr", "localhost"},
			want: []string{`debug_addr "localhost" has no port`}},
		{name: "unknown key", file: "http_adr: 127.0.0.1:1\n",
			want: []string{"unknown option http_adr in file ", " line 1", "did you mean http_addr?"}, not: []string{"config.Config"}},
		{name: "unknown key far from any", file: "data_dir: /x\nzzzzzzzz: 1\n",
			want: []string{"unknown option zzzzzzzz in file ", " line 2"}, not: []string{"did you mean"}},
		{name: "duration without unit", file: "max_age: 45\n",
			want: []string{`max_age: "45" is not a duration like 45s`, " line 1"}, not: []string{"!!int", "time.Duration"}},
		{name: "bad size in file", file: "max_payload: lots\n",
			want: []string{`max_payload: "lots" is not a size like 65536, 64KiB or 1MiB`}},
		{name: "bad boolean in file", file: "fsync: maybe\n", want: []string{`fsync: "maybe" is not a boolean: use true or false`}},
		{name: "list expected", file: "allowed_origins: {a: b}\n", want: []string{"allowed_origins must be a list"}},
		{name: "single value expected", file: "http_addr: [a, b]\n", want: []string{"http_addr must be a single value"}},
		{name: "unknown watcher key", file: "watcher_tokens:\n  - name: ops\n    tokn: x\n",
			want: []string{"unknown option tokn in file ", " line 3", "did you mean token?"}, not: []string{"config.WatcherToken"}},
		{name: "device tokens not a map", file: "device_tokens: [a]\n", want: []string{"device_tokens must hold key: value lines"}},
		{name: "watcher topics not a list", file: "watcher_tokens:\n  - {name: w, token: watcher-token-0123456789, topics: {a: 1}}\n",
			want: []string{"watcher_tokens[0].topics must be a list"}},
		{name: "file not a mapping", file: "- a\n", want: []string{"options like \"http_addr: 127.0.0.1:8080\""}},
		{name: "yaml syntax", file: "http_addr: [\n", want: []string{"config file ", "line 1"}, not: []string{": yaml:"}},
		{name: "empty number variable", env: map[string]string{"TELEHUB_MAX_EVENTS": ""},
			want: []string{"TELEHUB_MAX_EVENTS is set but empty: give it a value or unset it"}},
		{name: "bad size flag", args: []string{"--max-payload", "64XB"},
			want: []string{`--max-payload: "64XB" is not a size like 65536, 64KiB or 1MiB`}},
		{name: "payload bounds", args: []string{"--max-payload", "32MiB"},
			want: []string{"max_payload must be between 64 bytes and 16MiB, got 32MiB"}},
		{name: "duration flag", args: []string{"--device-timeout", "5"}, want: []string{`--device-timeout: "5" is not a duration like 45s`}},
		{name: "unknown flag", args: []string{"--http-adr", "x"}, want: []string{"unknown flag -http-adr", "telehub --help"}},
		{name: "flag without value", args: []string{"--data-dir"}, want: []string{"-data-dir needs a value"}},
		{name: "public debug address", args: []string{"--debug-addr", "0.0.0.0:6060"},
			want: []string{`debug_addr "0.0.0.0:6060" is not a loopback address`, "--insecure"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := map[string]string{}
			for k, v := range c.env {
				e[k] = v
			}
			if c.file != "" {
				e["TELEHUB_CONFIG"] = writeFile(t, c.file)
			}
			_, err := Load(c.args, env(e), io.Discard)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			for _, n := range c.not {
				if strings.Contains(err.Error(), n) {
					t.Errorf("error %q says %q", err, n)
				}
			}
		})
	}
}

func TestUsageErrorsAreSentinel(t *testing.T) {
	for _, args := range [][]string{{"--nope"}, {"--max-events", "x"}, {"--data-dir"}, {"serve"}} {
		if _, err := Load(args, env(nil), io.Discard); !errors.Is(err, ErrUsage) {
			t.Errorf("%v: err %v is not ErrUsage", args, err)
		}
	}
}

func TestSizesTakeUnits(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		file string
		want int
	}{
		{"flag KiB", []string{"--max-payload", "64KiB"}, nil, "", 65536},
		{"flag MiB", []string{"--max-payload=1MiB"}, nil, "", 1 << 20},
		{"flag bytes", []string{"--max-payload", "65536"}, nil, "", 65536},
		{"flag with space", []string{"--max-payload", "64 KiB"}, nil, "", 65536},
		{"env", nil, map[string]string{"TELEHUB_MAX_PAYLOAD": "128KiB"}, "", 128 << 10},
		{"file", nil, nil, "max_payload: 32KiB\n", 32 << 10},
		{"file bytes", nil, nil, "max_payload: 4096\n", 4096},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := map[string]string{}
			for k, v := range c.env {
				e[k] = v
			}
			if c.file != "" {
				e["TELEHUB_CONFIG"] = writeFile(t, c.file)
			}
			cfg, err := Load(c.args, env(e), io.Discard)
			if err != nil || cfg.MaxPayload != c.want {
				t.Fatalf("max payload %d, err %v; want %d", cfg.MaxPayload, err, c.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]int{
		"0": 0, "65536": 65536, "64KiB": 65536, "64kib": 65536, "1MiB": 1 << 20, "1 MiB": 1 << 20,
		"1GiB": 1 << 30, "4GiB": 4 << 30, "10KB": 10000, "3MB": 3_000_000, "512B": 512, "1_024": 1024, " 8KiB ": 8192,
	}
	for s, want := range good {
		if got, err := ParseSize(s); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "KiB", "-1", "+5", "1.5MiB", "64XB", "64 K iB", "9999999999999GiB", "99999999999999999999", "1e6"} {
		if got, err := ParseSize(s); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", s, got)
		}
	}
}

func TestFormatSizeAndDuration(t *testing.T) {
	for n, want := range map[int]string{0: "0", 100: "100", 65536: "64KiB", 1 << 20: "1MiB", 1536: "1536", 3 << 10: "3KiB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{24 * time.Hour: "24h", 45 * time.Second: "45s", 90 * time.Second: "1m30s",
		time.Hour + time.Second: "1h0m1s", 2 * time.Minute: "2m", 0: "0s", 500 * time.Millisecond: "500ms"} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"65536", "64KiB", "1 MiB", "10KB", "-1", "1_0", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
		if back, err := ParseSize(FormatSize(n)); err != nil || back != n {
			t.Fatalf("ParseSize(FormatSize(%d)) = %d, %v", n, back, err)
		}
	})
}

// An empty variable counts as given: it disables the embedded broker as
// an empty flag does.
func TestEmptyEnvironmentValues(t *testing.T) {
	file := writeFile(t, "mqtt_addr: 127.0.0.1:1999\nallowed_origins: [https://file.example]\n")
	cfg, err := Load(nil, env(map[string]string{"TELEHUB_CONFIG": file, "TELEHUB_MQTT_ADDR": "", "TELEHUB_ALLOWED_ORIGIN": ""}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MQTTAddr != "" || len(cfg.AllowedOrigins) != 0 {
		t.Fatalf("empty variables ignored: mqtt_addr %q, origins %v", cfg.MQTTAddr, cfg.AllowedOrigins)
	}
	cfg, err = Load(nil, env(map[string]string{"TELEHUB_CONFIG": file, "TELEHUB_ALLOWED_ORIGIN": "https://env.example"}), io.Discard)
	if err != nil || !reflect.DeepEqual(cfg.AllowedOrigins, []string{"https://env.example"}) || cfg.MQTTAddr != "127.0.0.1:1999" {
		t.Fatalf("the environment's list must replace the file's: %v %q %v", cfg.AllowedOrigins, cfg.MQTTAddr, err)
	}
}

func TestParseFindsCommandsAnywhere(t *testing.T) {
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"healthcheck", "--http-addr", "127.0.0.1:1"}, []string{"healthcheck"}},
		{[]string{"--http-addr", "127.0.0.1:1", "healthcheck"}, []string{"healthcheck"}},
		{[]string{"--fsync", "token", "--insecure"}, []string{"token"}},
		{[]string{"a", "--data-dir", "x", "b", "--", "--c"}, []string{"a", "b", "--c"}},
	}
	for _, c := range cases {
		cl, err := Parse(c.args)
		if err != nil || !reflect.DeepEqual(cl.Args, c.want) {
			t.Errorf("Parse(%v) args %v, err %v; want %v", c.args, cl.Args, err, c.want)
		}
	}
	cl, err := Parse([]string{"--http-addr", "127.0.0.1:9", "healthcheck"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := cl.Config(env(nil))
	if err != nil || cfg.HTTPAddr != "127.0.0.1:9" {
		t.Fatalf("flags before the command lost: %q %v", cfg.HTTPAddr, err)
	}
	if _, err := Parse([]string{"healthcheck", "--help"}); !errors.Is(err, ErrHelp) {
		t.Fatalf("--help after a command: %v", err)
	}
	if !TakesValue("http-addr") || !TakesValue("config") || TakesValue("fsync") || TakesValue("nope") {
		t.Fatal("TakesValue")
	}
}

func TestHelpShowsKindsAndDefaults(t *testing.T) {
	var out bytes.Buffer
	if _, err := Load([]string{"--help"}, env(nil), &out); !errors.Is(err, ErrHelp) {
		t.Fatalf("err %v", err)
	}
	for _, want := range []string{
		"--http-addr host:port", "(default 127.0.0.1:8080; env TELEHUB_HTTP_ADDR)",
		"--max-payload size", "(default 64KiB; env TELEHUB_MAX_PAYLOAD)",
		"--max-age duration", "(default 24h; env TELEHUB_MAX_AGE)",
		"--fsync\n", "(default true; env TELEHUB_FSYNC)",
		"--max-events int", "--device-rate number", "--allowed-origin list", "(default none; env TELEHUB_ALLOWED_ORIGIN)",
		"--config path", `(default ""; env TELEHUB_DEBUG_ADDR)`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
	if len(Flags()) != len(options) || Flags()[0].Default != "127.0.0.1:8080" || Flags()[0].Key != "http_addr" {
		t.Fatalf("Flags() = %+v", Flags()[0])
	}
}

// Every key of the file is an option or a credential setting, and every
// option's key is a field of Config.
func TestOptionsMatchConfigFields(t *testing.T) {
	keys := map[string]bool{}
	for _, k := range configKeys() {
		keys[k] = true
	}
	for _, o := range options {
		if !keys[o.key] {
			t.Errorf("option --%s has YAML key %q, which is no Config field", o.name, o.key)
		}
		delete(keys, o.key)
	}
	for k := range keys {
		switch k {
		case "device_tokens", "watcher_tokens":
		default:
			t.Errorf("Config field %q has no flag", k)
		}
	}
}
