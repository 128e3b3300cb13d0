package firmwaresim

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/telehub/telehub/internal/config"
	"github.com/telehub/telehub/internal/testcert"
)

func TestParseTokenFile(t *testing.T) {
	got, err := parseTokenFile([]byte("# devices\nsim-0 token-a\n\nsim-1=tok=en:b\n  sim-2:  token-c  \r\nsim-3\ttoken-d\n"))
	want := map[string]string{"sim-0": "token-a", "sim-1": "tok=en:b", "sim-2": "token-c", "sim-3": "token-d"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, %v; want %v", got, err, want)
	}
	bad := []struct{ body, want string }{
		{"sim-0\n", "line 1: want a device id and its token"},
		{"-x token\n", `line 1: "-x" is not a device id`},
		{"# c\nsim-0 a b\n", "line 2: the token of sim-0 must be one word"},
		{"sim-0 a\nsim-0 b\n", "line 2: sim-0 has a token already"},
	}
	for _, b := range bad {
		if _, err := parseTokenFile([]byte(b.body)); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%q: err %v, want %q", b.body, err, b.want)
		}
	}
}

func FuzzParseTokenFile(f *testing.F) {
	for _, s := range []string{"sim-0 token-a\n", "# c\nsim-1=x\n", "sim-2: y\r\n", "bad\n", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tokens, err := parseTokenFile(data)
		if err != nil {
			return
		}
		for id, tok := range tokens {
			if !validIDForTest(id) || tok == "" || strings.ContainsAny(tok, " \t\n") {
				t.Fatalf("accepted %q -> %q", id, tok)
			}
		}
	})
}

func validIDForTest(id string) bool {
	_, err := parseTokenFile([]byte(id + " x"))
	return err == nil
}

func writeTokenFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A device's token: its line of the file, else the pattern, else --token.
func TestDeviceTokens(t *testing.T) {
	file := writeTokenFile(t, "sim-1 from-file\n")
	cases := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"none", Config{}, []string{"", "", ""}},
		{"one for all", Config{Token: "all"}, []string{"all", "all", "all"}},
		{"pattern", Config{Token: "all", TokenPattern: "secret-{id}-{n}"}, []string{"secret-sim-0-0", "secret-sim-1-1", "secret-sim-2-2"}},
		{"file then token", Config{TokenFile: file, Token: "all"}, []string{"all", "from-file", "all"}},
		{"file then pattern", Config{TokenFile: file, TokenPattern: "p-{id}"}, []string{"p-sim-0", "from-file", "p-sim-2"}},
	}
	for _, c := range cases {
		c.cfg.Devices = 3
		cfg := c.cfg.withDefaults()
		got, err := cfg.deviceTokens()
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %v %v, want %v", c.name, got, err, c.want)
		}
	}
	cfg := Config{Devices: 3, TokenFile: file}.withDefaults()
	if _, err := cfg.deviceTokens(); !errors.Is(err, ErrNoToken) || !strings.Contains(err.Error(), "no line for sim-0") {
		t.Fatalf("a device missing from the file: %v", err)
	}
	cfg.TokenFile = filepath.Join(t.TempDir(), "missing")
	if _, err := cfg.deviceTokens(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("a missing file: %v", err)
	}
}

func TestTLSConfig(t *testing.T) {
	if cfg, err := (&Config{}).tlsConfig(); cfg != nil || err != nil {
		t.Fatalf("no TLS options: %v %v", cfg, err)
	}
	if cfg, err := (&Config{InsecureSkipVerify: true}).tlsConfig(); err != nil || !cfg.InsecureSkipVerify {
		t.Fatalf("insecure: %v %v", cfg, err)
	}
	certFile, keyFile := testcert.New(t).WriteFiles(t, t.TempDir())
	if cfg, err := (&Config{CAFile: certFile}).tlsConfig(); err != nil || cfg.RootCAs == nil {
		t.Fatalf("CA: %v %v", cfg, err)
	}
	for _, bad := range []string{keyFile, filepath.Join(t.TempDir(), "missing.pem")} {
		if _, err := (&Config{CAFile: bad}).tlsConfig(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("CA %s: %v", bad, err)
		}
	}
}

// Devices with tokens of their own (file and pattern), a watcher token for
// the watchers and verify, over TLS (HTTPS, WSS, MQTTS) with the hub's
// certificate given as a CA, or not verified at all.
func TestE2ECredentialsAndTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	certFile, keyFile := testcert.New(t).WriteFiles(t, t.TempDir())
	const watchToken = "watcher-token-0123456789"
	h := startRealHub(t, func(c *config.Config) {
		c.TLSCert, c.TLSKey = certFile, keyFile
		c.DeviceTokens = map[string]string{"sim-0": "file-token-0123456789"}
		for _, id := range []string{"sim-1", "sim-2", "sim-3"} {
			c.DeviceTokens[id] = "device-secret-" + id
		}
		c.WatcherTokens = []config.WatcherToken{{Name: "sim", Token: watchToken, Topics: []string{"telemetry/#"}}}
	})
	tokenFile := writeTokenFile(t, "sim-0 file-token-0123456789\n")
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"ca", func(c *Config) { c.CAFile = certFile }},
		{"insecure skip verify, WebSocket watcher", func(c *Config) { c.InsecureSkipVerify, c.WatchTransport = true, WatchWS }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{
				Hub: "https://" + h.HTTPAddr(), MQTT: "ssl://" + h.MQTTAddr(), Transport: TransportMixed,
				Devices: 4, Rate: 20, TokenFile: tokenFile, TokenPattern: "device-secret-{id}",
				WatchToken: watchToken, Watchers: 1, Verify: true, DrainTimeout: 20 * time.Second,
				SeqStart: uint64(time.Now().UnixMilli()) * 1000,
			}
			tc.mod(&cfg)
			s, sum := runUntil(t, cfg, "every device connected and 40 acks", func(s *Sim) bool {
				return s.stats.acked.Load() >= 40 && s.stats.online.Load() == 4
			})
			requireVerified(t, sum)
			if sum.NeverConnected != 0 || sum.ConnectFail != 0 || sum.Watchers.Deliveries == 0 {
				t.Fatalf("never connected %d, connect failures %d (%v), watcher deliveries %d",
					sum.NeverConnected, sum.ConnectFail, s.lastErr.Load(), sum.Watchers.Deliveries)
			}
		})
	}
}

// One token for devices that each need their own: the run fails and says
// which devices never connected and why.
func TestE2EDevicesThatCannotConnectFailTheRun(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	h := startRealHub(t, func(c *config.Config) {
		c.DeviceTokens = map[string]string{"sim-0": "device-secret-sim-0", "sim-1": "device-secret-sim-1", "sim-2": "device-secret-sim-2"}
	})
	cfg := Config{
		Hub: "http://" + h.HTTPAddr(), MQTT: "tcp://" + h.MQTTAddr(), Transport: TransportMixed,
		Devices: 3, Rate: 20, Token: "device-secret-sim-0", BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
	}
	_, sum, err := runSim(t, cfg, "sim-0 acked and the others refused", func(s *Sim) bool {
		return s.stats.acked.Load() >= 5 && s.stats.connectFails.Load() >= 4
	})
	t.Log(err)
	if !errors.Is(err, ErrNotAllConnected) || sum.NeverConnected != 2 {
		t.Fatalf("err %v, never connected %d", err, sum.NeverConnected)
	}
	for _, want := range []string{"2 of 3 devices never connected (sim-1, sim-2)", "latest error"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// Verify against a hub with credentials and no watcher token says which
// flag is missing.
func TestE2EVerifyWithoutWatchToken(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	h := startRealHub(t, func(c *config.Config) {
		c.DeviceTokens = map[string]string{"sim-0": "device-secret-sim-0"}
	})
	cfg := Config{Hub: "http://" + h.HTTPAddr(), Devices: 1, Rate: 20, TokenPattern: "device-secret-{id}", Verify: true}
	_, _, err := runSim(t, cfg, "5 acks", acked(5))
	if !errors.Is(err, ErrHubResponse) || !strings.Contains(err.Error(), "HTTP 401") || !strings.Contains(err.Error(), "--watch-token") {
		t.Fatalf("err %v", err)
	}
}
