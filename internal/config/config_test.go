package config

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) Env {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "telehub.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsWithNothingGiven(t *testing.T) {
	cfg, err := Load(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("got %+v, want defaults %+v", cfg, Default())
	}
	want := Config{HTTPAddr: "127.0.0.1:8080", MQTTAddr: "127.0.0.1:1883", DataDir: "./data", Fsync: true,
		MaxEvents: 1000000, MaxAge: 24 * time.Hour, DeviceTimeout: 45 * time.Second, HeartbeatInterval: 15 * time.Second,
		MaxPayload: 65536, DeviceRate: 200, DeviceBurst: 2000, MaxConnections: 10000, MaxConnectionsPerAddress: 1000, WatcherQueue: 4096, ClusterResumeMargin: 10 * time.Second, LogLevel: "info", LogFormat: "text",
		MQTTMaxClients: 10000, MQTTMaxClientsPerAddress: 1000, MQTTMaxSessions: 20000, MQTTSessionExpiry: time.Hour,
		MQTTMaxQueued: 1000, MQTTMaxQueuedBytes: 1 << 20, MQTTMaxQueuedBytesTotal: 256 << 20,
		MQTTMaxSubscriptions: 100, MQTTMaxRetained: 10000, MQTTMaxRetainedPerDevice: 100,
		MQTTMaxRetainedBytes: 64 << 20}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("defaults differ from the documented ones: %+v", cfg)
	}
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "http_addr: 127.0.0.1:1001\nmqtt_addr: 127.0.0.1:2001\ndata_dir: /from/file\nmax_events: 10\n")
	e := env(map[string]string{
		"TELEHUB_CONFIG":    file,
		"TELEHUB_MQTT_ADDR": "127.0.0.1:2002",
		"TELEHUB_DATA_DIR":  "/from/env",
	})
	cfg, err := Load([]string{"--data-dir", "/from/flag"}, e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"file over default", cfg.HTTPAddr, "127.0.0.1:1001"},
		{"env over file", cfg.MQTTAddr, "127.0.0.1:2002"},
		{"flag over env", cfg.DataDir, "/from/flag"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if cfg.MaxEvents != 10 || cfg.MaxAge != 24*time.Hour {
		t.Errorf("file value or default lost: max_events %d max_age %s", cfg.MaxEvents, cfg.MaxAge)
	}
}

func TestFlagTypes(t *testing.T) {
	cfg, err := Load([]string{
		"--fsync=false", "--device-timeout", "2s", "--max-age=1h", "--max-payload", "1024",
		"--watcher-queue", "8", "--allowed-origin", "https://a.example", "--allowed-origin", "https://b.example",
		"--log-format", "json", "--mqtt-addr", "",
	}, env(map[string]string{"TELEHUB_ALLOWED_ORIGIN": "https://env.example"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Fsync || cfg.DeviceTimeout != 2*time.Second || cfg.MaxAge != time.Hour || cfg.MaxPayload != 1024 ||
		cfg.WatcherQueue != 8 || cfg.LogFormat != "json" || cfg.MQTTAddr != "" {
		t.Fatalf("flags not applied: %+v", cfg)
	}
	if want := []string{"https://a.example", "https://b.example"}; !reflect.DeepEqual(cfg.AllowedOrigins, want) {
		t.Fatalf("origins %v, want %v (flags replace env)", cfg.AllowedOrigins, want)
	}
}

// Every embedded-broker limit is reachable as a flag, a variable and a
// YAML key.
func TestMQTTLimitOptions(t *testing.T) {
	file := writeFile(t, "mqtt_max_retained: 7\nmqtt_max_retained_bytes: 4KiB\n")
	cfg, err := Load([]string{
		"--mqtt-max-clients", "5", "--mqtt-max-sessions", "6", "--mqtt-session-expiry", "2m",
		"--mqtt-max-queued", "8", "--mqtt-max-queued-bytes", "9000", "--mqtt-max-subscriptions", "3",
		"--mqtt-max-retained-per-device", "2", "--config", file,
	}, env(map[string]string{"TELEHUB_MQTT_MAX_QUEUED_BYTES_TOTAL": "100000"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.MQTTMaxClients, want.MQTTMaxSessions, want.MQTTSessionExpiry = 5, 6, 2*time.Minute
	want.MQTTMaxQueued, want.MQTTMaxQueuedBytes, want.MQTTMaxQueuedBytesTotal = 8, 9000, 100000
	want.MQTTMaxSubscriptions, want.MQTTMaxRetained = 3, 7
	want.MQTTMaxRetainedPerDevice, want.MQTTMaxRetainedBytes = 2, 4096
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v, want %+v", cfg, want)
	}
}

// The per-address cap of the broker's connections is a flag, a variable
// and a YAML key, the flag over the variable over the file.
func TestMQTTMaxClientsPerAddressOption(t *testing.T) {
	file := writeFile(t, "mqtt_max_clients_per_address: 7\n")
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want int
	}{
		{"default", nil, nil, 1000},
		{"file", []string{"--config", file}, nil, 7},
		{"variable over file", []string{"--config", file}, map[string]string{"TELEHUB_MQTT_MAX_CLIENTS_PER_ADDRESS": "5"}, 5},
		{"flag over variable", []string{"--config", file, "--mqtt-max-clients-per-address", "3"},
			map[string]string{"TELEHUB_MQTT_MAX_CLIENTS_PER_ADDRESS": "5"}, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Load(c.args, env(c.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MQTTMaxClientsPerAddress != c.want {
				t.Fatalf("MQTTMaxClientsPerAddress %d, want %d", cfg.MQTTMaxClientsPerAddress, c.want)
			}
		})
	}
}

// The cluster options are flags, variables and YAML keys.
func TestClusterOptions(t *testing.T) {
	file := writeFile(t, "cluster: plant-1\nmqtt_broker: tcp://127.0.0.1:1883\n")
	cfg, err := Load([]string{"--config", file, "--node-id", "hub-a"},
		env(map[string]string{"TELEHUB_CLUSTER_RESUME_MARGIN": "30s"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cluster != "plant-1" || cfg.NodeID != "hub-a" || cfg.ClusterResumeMargin != 30*time.Second {
		t.Fatalf("cluster options not applied: %q %q %s", cfg.Cluster, cfg.NodeID, cfg.ClusterResumeMargin)
	}
}

func TestEnvBool(t *testing.T) {
	cfg, err := Load(nil, env(map[string]string{"TELEHUB_FSYNC": "false"}), io.Discard)
	if err != nil || cfg.Fsync {
		t.Fatalf("TELEHUB_FSYNC=false: fsync %v, err %v", cfg.Fsync, err)
	}
}

func TestRejections(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		file string
		want string
	}{
		{"bad duration flag", []string{"--device-timeout", "soon"}, nil, "", "not a duration"},
		{"bad int flag", []string{"--max-events", "many"}, nil, "", "not a whole number"},
		{"bad bool env", nil, map[string]string{"TELEHUB_FSYNC": "perhaps"}, "", "TELEHUB_FSYNC"},
		{"unknown flag", []string{"--nope"}, nil, "", "unknown flag -nope"},
		{"stray argument", []string{"serve"}, nil, "", "unexpected argument"},
		{"unknown yaml key", nil, nil, "http_adr: 127.0.0.1:1\n", "http_adr"},
		{"bad yaml", nil, nil, "http_addr: [\n", "config file"},
		{"missing file", []string{"--config", "/nonexistent/telehub.yaml"}, nil, "", "no such file"},
		{"zero queue", []string{"--watcher-queue", "0"}, nil, "", "watcher_queue"},
		{"negative device rate", []string{"--device-rate", "-1"}, nil, "", "device_rate"},
		{"device rate word", []string{"--device-rate", "fast"}, nil, "", "not a number"},
		{"negative device burst", []string{"--device-burst", "-2"}, nil, "", "device_burst"},
		{"tiny payload", []string{"--max-payload", "10"}, nil, "", "max_payload"},
		{"bad log level", []string{"--log-level", "loud"}, nil, "", "log_level"},
		{"bad log format", []string{"--log-format", "xml"}, nil, "", "log_format"},
		{"cert without key", []string{"--tls-cert", "c.pem"}, nil, "", "tls_key"},
		{"broker url without scheme", []string{"--mqtt-broker", "127.0.0.1:1883"}, nil, "", "mqtt_broker"},
		{"broker url of http", nil, map[string]string{"TELEHUB_MQTT_BROKER": "http://127.0.0.1:1883"}, "", "scheme"},
		{"broker url without host", nil, nil, "mqtt_broker: tcp://\n", "no host"},
		{"share group with a slash", []string{"--mqtt-broker", "tcp://127.0.0.1:1883", "--mqtt-share-group", "a/b"}, nil, "", "mqtt_share_group"},
		{"public without credentials", []string{"--http-addr", "0.0.0.0:8080"}, nil, "", "--insecure"},
		{"public mqtt without credentials", []string{"--mqtt-addr", ":1883"}, nil, "", "loopback"},
		{"short admin token", []string{"--admin-token", "secret"}, nil, "", "admin token"},
		{"bad admin hash env", nil, map[string]string{"TELEHUB_ADMIN_TOKEN": "sha256:beef"}, "", "hex digits"},
		{"bad device id", nil, nil, "device_tokens:\n  a/b: device-token-0123456789\n", "device id"},
		{"bad device token", nil, nil, "device_tokens:\n  d1: short\n", "device \"d1\""},
		{"watcher without topics", nil, nil, "watcher_tokens:\n  - name: ops\n    token: watcher-token-0123456789\n", "no topics"},
		{"watcher bad commands pattern", nil, nil, "watcher_tokens:\n  - name: ops\n    token: watcher-token-0123456789\n    topics: [\"#\"]\n    commands: [\"a/b\"]\n", "commands pattern"},
		{"watcher bad topic", nil, nil, "watcher_tokens:\n  - name: ops\n    token: watcher-token-0123456789\n    topics: [\"a/#/b\"]\n", "last level"},
		{"watcher unknown key", nil, nil, "watcher_tokens:\n  - name: ops\n    tokn: x\n", "tokn"},
		{"watchers share a name", nil, nil, "watcher_tokens:\n  - {name: w, token: watcher-token-0123456789, topics: [\"#\"]}\n  - {name: w, token: watcher-token-9876543210, topics: [\"#\"]}\n", "defined twice"},
		{"zero mqtt clients", []string{"--mqtt-max-clients", "0"}, nil, "", "mqtt_max_clients"},
		{"zero mqtt clients per address", []string{"--mqtt-max-clients-per-address", "0"}, nil, "", "mqtt_max_clients_per_address"},
		{"negative mqtt clients per address", nil, nil, "mqtt_max_clients_per_address: -2\n", "mqtt_max_clients_per_address"},
		{"negative mqtt sessions", nil, map[string]string{"TELEHUB_MQTT_MAX_SESSIONS": "-1"}, "", "mqtt_max_sessions"},
		{"short mqtt session expiry", []string{"--mqtt-session-expiry", "10ms"}, nil, "", "mqtt_session_expiry"},
		{"mqtt queue over packet ids", []string{"--mqtt-max-queued", "70000"}, nil, "", "mqtt_max_queued"},
		{"zero mqtt queued bytes", nil, nil, "mqtt_max_queued_bytes: 0\n", "mqtt_max_queued_bytes"},
		{"zero mqtt queued bytes total", []string{"--mqtt-max-queued-bytes-total", "0"}, nil, "", "mqtt_max_queued_bytes_total"},
		{"zero mqtt subscriptions", []string{"--mqtt-max-subscriptions", "0"}, nil, "", "mqtt_max_subscriptions"},
		{"zero mqtt retained", []string{"--mqtt-max-retained", "0"}, nil, "", "mqtt_max_retained"},
		{"zero mqtt retained per device", []string{"--mqtt-max-retained-per-device", "0"}, nil, "", "mqtt_max_retained_per_device"},
		{"zero mqtt retained bytes", []string{"--mqtt-max-retained-bytes", "0"}, nil, "", "mqtt_max_retained_bytes"},
		{"cluster without broker", []string{"--cluster", "c1"}, nil, "", "needs mqtt_broker"},
		{"cluster bad name", []string{"--cluster", "a/b", "--mqtt-broker", "tcp://127.0.0.1:1883"}, nil, "", "cluster \"a/b\": invalid name"},
		{"node id bad name", nil, map[string]string{"TELEHUB_CLUSTER": "c1", "TELEHUB_MQTT_BROKER": "tcp://127.0.0.1:1883", "TELEHUB_NODE_ID": "+"}, "", "node_id \"+\": invalid name"},
		{"node id without cluster", []string{"--node-id", "n1"}, nil, "", "without cluster"},
		{"cluster with share group", nil, nil, "cluster: c1\nmqtt_broker: tcp://127.0.0.1:1883\nmqtt_share_group: g\n", "exclude each other"},
		{"negative resume margin", []string{"--cluster-resume-margin", "-1s"}, nil, "", "cluster_resume_margin"},
		{"public with bad credentials", []string{"--http-addr", "0.0.0.0:0", "--admin-token", "x"}, nil, "", "admin token"},
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
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one mentioning %q", err, c.want)
			}
		})
	}
}

func TestValidationErrorsAreSentinel(t *testing.T) {
	c := Default()
	c.MaxEvents = 0
	if err := c.Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("err %v is not ErrInvalid", err)
	}
}

func TestInsecureAllowsPublicAddresses(t *testing.T) {
	cfg, err := Load([]string{"--http-addr", "0.0.0.0:8080", "--mqtt-addr", ":1883", "--insecure"}, env(nil), io.Discard)
	if err != nil || !cfg.Insecure {
		t.Fatalf("insecure: %v %+v", err, cfg)
	}
}

func TestCredentialsFromFile(t *testing.T) {
	file := writeFile(t, `admin_token: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
device_tokens:
  pump-7: device-token-0123456789
watcher_tokens:
  - name: ops
    token: watcher-token-0123456789
    topics: ["telemetry/#", "presence/+"]
    commands: ["pump-7", "+"]
`)
	cfg, err := Load([]string{"--config", file, "--data-dir", "/var/lib/telehub"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.HasCredentials() {
		t.Fatal("HasCredentials = false")
	}
	got := cfg.Credentials()
	if got.Path != filepath.Join("/var/lib/telehub", "credentials.json") || got.AdminToken != cfg.AdminToken ||
		got.Devices["pump-7"] != "device-token-0123456789" || len(got.Watchers) != 1 ||
		got.Watchers[0].Name != "ops" || !reflect.DeepEqual(got.Watchers[0].Topics, []string{"telemetry/#", "presence/+"}) ||
		!reflect.DeepEqual(got.Watchers[0].Commands, []string{"pump-7", "+"}) {
		t.Fatalf("Credentials() = %+v", got)
	}
}

func TestAdminTokenPrecedence(t *testing.T) {
	file := writeFile(t, "admin_token: admin-token-from-file\n")
	e := map[string]string{"TELEHUB_CONFIG": file}
	cases := []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"file", nil, "", "admin-token-from-file"},
		{"env over file", nil, "admin-token-from-env", "admin-token-from-env"},
		{"flag over env", []string{"--admin-token", "admin-token-from-flag"}, "admin-token-from-env", "admin-token-from-flag"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			delete(e, "TELEHUB_ADMIN_TOKEN")
			if c.env != "" {
				e["TELEHUB_ADMIN_TOKEN"] = c.env
			}
			cfg, err := Load(c.args, env(e), io.Discard)
			if err != nil || cfg.AdminToken != c.want {
				t.Fatalf("admin token %q, err %v; want %q", cfg.AdminToken, err, c.want)
			}
		})
	}
}

// Listening beyond loopback needs credentials or --insecure.
func TestCredentialsAllowPublicAddresses(t *testing.T) {
	withFile := t.TempDir()
	if err := os.WriteFile(filepath.Join(withFile, "credentials.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	public := []string{"--http-addr", "0.0.0.0:0", "--mqtt-addr", ":0"}
	cases := []struct {
		name string
		args []string
		env  map[string]string
		file string
	}{
		{"admin token flag", []string{"--admin-token", "admin-token-0123456789"}, nil, ""},
		{"admin token env", nil, map[string]string{"TELEHUB_ADMIN_TOKEN": "admin-token-0123456789"}, ""},
		{"device token", nil, nil, "device_tokens: {d1: device-token-0123456789}\n"},
		{"watcher token", nil, nil, "watcher_tokens: [{name: w, token: watcher-token-0123456789, topics: [\"#\"]}]\n"},
		{"credentials file", []string{"--data-dir", withFile}, nil, ""},
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
			if _, err := Load(append(public, c.args...), env(e), io.Discard); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestExposed(t *testing.T) {
	c := Default()
	if got := c.Exposed(); len(got) != 0 {
		t.Fatalf("defaults exposed: %v", got)
	}
	c.HTTPAddr, c.MQTTAddr = "0.0.0.0:8080", ":1883"
	if got := c.Exposed(); len(got) != 2 {
		t.Fatalf("Exposed = %v, want both addresses", got)
	}
	c.MQTTBroker = "tcp://127.0.0.1:1883" // the embedded broker does not run
	if got := c.Exposed(); len(got) != 1 || !strings.Contains(got[0], "http_addr") {
		t.Fatalf("Exposed = %v, want http_addr only", got)
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:80": true, "127.3.4.5:0": true, "[::1]:1883": true, "localhost:1": true,
		":8080": false, "0.0.0.0:1": false, "192.168.1.2:80": false, "example.com:80": false, "nonsense": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// The documented example must load and equal the defaults it documents.
func TestExampleConfigFile(t *testing.T) {
	cfg, err := Load([]string{"--config", "../../configs/telehub.yaml"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.AllowedOrigins = []string{}
	want.DeviceTokens = map[string]string{}
	want.WatcherTokens = []WatcherToken{}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("configs/telehub.yaml differs from the defaults:\n got %+v\nwant %+v", cfg, want)
	}
}

// The commented credential examples of the example file load, and allow a
// public address.
func TestExampleCredentials(t *testing.T) {
	data, err := os.ReadFile("../../configs/telehub.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	inExample := false
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case line == "device_tokens: {}" || line == "watcher_tokens: []":
			out = append(out, strings.Fields(line)[0])
			inExample = true
		case inExample && strings.HasPrefix(line, "#   "):
			out = append(out, line[1:])
		default:
			inExample = false
			out = append(out, line)
		}
	}
	file := writeFile(t, strings.Join(out, "\n"))
	cfg, err := Load([]string{"--config", file, "--http-addr", "0.0.0.0:0"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.DeviceTokens) != 2 || len(cfg.WatcherTokens) != 2 {
		t.Fatalf("examples not all loaded: %+v %+v", cfg.DeviceTokens, cfg.WatcherTokens)
	}
}

// Every option is documented in the example file.
func TestExampleCoversEveryOption(t *testing.T) {
	data, err := os.ReadFile("../../configs/telehub.yaml")
	if err != nil {
		t.Fatal(err)
	}
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		key := typ.Field(i).Tag.Get("yaml")
		if !strings.Contains(string(data), "\n"+key+":") {
			t.Errorf("configs/telehub.yaml does not document %q", key)
		}
	}
}
