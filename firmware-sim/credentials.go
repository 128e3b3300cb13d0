package firmwaresim

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/telehub/telehub/internal/topic"
)

// ErrNoToken: credentials were given, but not for every device.
var ErrNoToken = errors.New("no token for a device")

// parseTokenFile parses a token file: one device a line, its id then its
// token, separated by spaces, "=" or ":" (a device id holds none of them);
// blank lines and lines starting with # are ignored.
func parseTokenFile(data []byte) (map[string]string, error) {
	tokens := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		cut := strings.IndexAny(line, " \t=:")
		if cut < 0 {
			return nil, fmt.Errorf("line %d: want a device id and its token, like \"sim-0 token\"", n)
		}
		id, token := line[:cut], strings.TrimSpace(line[cut+1:])
		if !topic.ValidName(id) {
			return nil, fmt.Errorf("line %d: %.80q is not a device id", n, id)
		}
		if token == "" || strings.ContainsAny(token, " \t") {
			return nil, fmt.Errorf("line %d: the token of %s must be one word", n, id)
		}
		if _, dup := tokens[id]; dup {
			return nil, fmt.Errorf("line %d: %s has a token already", n, id)
		}
		tokens[id] = token
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return tokens, nil
}

// deviceTokens returns the token of every device, by index: its line of
// TokenFile, else TokenPattern with {id} and {n} replaced, else Token.
// With a token file and no fallback, a device missing from it is an error.
func (c *Config) deviceTokens() ([]string, error) {
	var file map[string]string
	if c.TokenFile != "" {
		data, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("%w: token-file: %w", ErrInvalidConfig, err)
		}
		if file, err = parseTokenFile(data); err != nil {
			return nil, fmt.Errorf("%w: token-file %s: %w", ErrInvalidConfig, c.TokenFile, err)
		}
	}
	tokens := make([]string, c.Devices)
	for i := range tokens {
		id := c.IDPrefix + strconv.Itoa(i)
		tok, ok := file[id]
		switch {
		case ok:
		case c.TokenPattern != "":
			tok = strings.NewReplacer("{id}", id, "{n}", strconv.Itoa(i)).Replace(c.TokenPattern)
		case c.Token != "":
			tok = c.Token
		case file != nil:
			return nil, fmt.Errorf("%w: token-file %s has no line for %s (give every device a line, or --token-pattern or --token for the others)",
				ErrNoToken, c.TokenFile, id)
		}
		tokens[i] = tok
	}
	return tokens, nil
}

// tlsConfig returns the TLS configuration of connections to a TLS hub or
// broker: the system's roots plus CAFile's, or no verification at all with
// InsecureSkipVerify. nil when neither is set (the system's defaults).
func (c *Config) tlsConfig() (*tls.Config, error) {
	if c.CAFile == "" && !c.InsecureSkipVerify {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // asked for by --insecure-skip-verify
	if c.CAFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("%w: ca: %w", ErrInvalidConfig, err)
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: ca %s holds no PEM certificate", ErrInvalidConfig, c.CAFile)
	}
	cfg.RootCAs = roots
	return cfg, nil
}

// tlsClone returns a copy of the Sim's TLS configuration for one
// connection (libraries fill in the server name), or nil.
func (s *Sim) tlsClone() *tls.Config {
	if s.tls == nil {
		return nil
	}
	return s.tls.Clone()
}

// newHTTPClient returns the HTTP client of verify.
func newHTTPClient(tlsCfg *tls.Config) *http.Client {
	c := &http.Client{Timeout: 30 * time.Second}
	if tlsCfg != nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = tlsCfg
		c.Transport = t
	}
	return c
}

// setWatchToken authenticates a request of verify or of a watcher.
func (c *Config) setWatchToken(h http.Header) {
	if c.WatchToken != "" {
		h.Set("Authorization", "Bearer "+c.WatchToken)
	}
}

// isTLSBroker reports whether an MQTT broker URL asks for TLS.
func isTLSBroker(scheme string) bool {
	switch scheme {
	case "ssl", "tls", "mqtts", "tcps":
		return true
	}
	return false
}
