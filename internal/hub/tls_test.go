package hub

import (
	"context"
	"crypto/tls"
	"net/http"
	"testing"

	"github.com/telehub/telehub/internal/testcert"
)

// TestTLS serves HTTPS and MQTTS with --tls-cert/--tls-key, and
// the healthcheck subcommand's probe follows.
func TestTLS(t *testing.T) {
	cfg := testConfig(t)
	cert := testcert.New(t)
	cfg.TLSCert, cfg.TLSKey = cert.WriteFiles(t, t.TempDir())
	h := startHub(t, cfg)

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cert.Client}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + h.HTTPAddr() + "/healthz")
	if err != nil {
		t.Fatalf("HTTPS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTPS /healthz: %s", resp.Status)
	}
	// Plain HTTP on the TLS port gets Go's TLS server's 400, never the API.
	if plain, err := http.Get("http://" + h.HTTPAddr() + "/healthz"); err == nil {
		plain.Body.Close()
		if plain.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP served on the TLS port")
		}
	}
	conn, err := tls.Dial("tcp", h.MQTTAddr(), cert.Client)
	if err != nil {
		t.Fatalf("MQTTS handshake: %v", err)
	}
	conn.Close()

	probe := cfg
	probe.HTTPAddr = h.HTTPAddr()
	if err := Healthcheck(context.Background(), probe); err != nil {
		t.Fatalf("healthcheck over TLS: %v", err)
	}
}
