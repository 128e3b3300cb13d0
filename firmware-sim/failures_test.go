package firmwaresim

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestVerifyHubAnswers(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   error
	}{
		{"events expired", http.StatusGone, `{"error":{"code":"gone","message":"oldest is x"}}`, ErrEventsExpired},
		{"server error", http.StatusInternalServerError, `{"error":{"code":"internal","message":"boom"}}`, ErrHubResponse},
		{"not an array", http.StatusOK, `{"events":[]}`, ErrHubResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			s, err := New(Config{Hub: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.verify(context.Background(), s.cfg.Hub)
			if !errors.Is(err, tt.want) {
				t.Fatalf("verify: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifyHubUnreachable(t *testing.T) {
	s, err := New(Config{Hub: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.verify(context.Background(), s.cfg.Hub); err == nil || !strings.Contains(err.Error(), "GET /v1/events") {
		t.Fatalf("verify against nothing: %v", err)
	}
}

func TestConnectRefused(t *testing.T) {
	unauthorized := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"code":"unauthorized","message":"bad token"}}`, http.StatusUnauthorized)
	}))
	defer unauthorized.Close()
	tests := []struct {
		name      string
		transport Transport
		hub, mqtt string
		want      string
	}{
		{"websocket 401", TransportWS, unauthorized.URL, "", "HTTP 401"},
		{"websocket nothing listening", TransportWS, "http://127.0.0.1:1", "", "connection refused"},
		{"mqtt nothing listening", TransportMQTT, "", "tcp://127.0.0.1:1", "mqtt connect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// An attempt still under way when the run ends is not counted,
			// so the run lasts long enough for a refused attempt to come
			// back even on a loaded machine.
			s, err := New(Config{Transport: tt.transport, Hub: tt.hub, MQTT: tt.mqtt, Token: "t0k",
				Duration: 2 * time.Second, DrainTimeout: time.Millisecond,
				BackoffMin: time.Millisecond, BackoffMax: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			sum, err := s.Run(t.Context())
			if !errors.Is(err, ErrNoConnection) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run: %v, want ErrNoConnection mentioning %q", err, tt.want)
			}
			if sum.ConnectFail == 0 || sum.Connects != 0 || sum.NeverConnected != 1 {
				t.Fatalf("connect failures %d, connects %d, never connected %d (want 1)",
					sum.ConnectFail, sum.Connects, sum.NeverConnected)
			}
		})
	}
}

func TestVerifySkipsEarlierRunsAndCountsUnexpected(t *testing.T) {
	h := newFakeHub(t, nil)
	old, stray := uint64(5), uint64(1<<40)
	h.events = append(h.events,
		fakeEvent{device: "sim-0", metric: MetricTemp, ts: time.Now().Add(-time.Hour).UnixMilli(), seq: &old},
		fakeEvent{device: "sim-0", metric: MetricTemp, ts: time.Now().UnixMilli(), seq: &stray},
		fakeEvent{device: "other-1", metric: MetricTemp, ts: time.Now().UnixMilli(), seq: &stray},
	)
	cfg := h.config()
	cfg.Rate, cfg.Verify = 50, true
	_, sum := runUntil(t, cfg, "5 acks", acked(5))
	requireVerified(t, sum)
	if sum.Verify.Unexpected != 1 {
		t.Fatalf("unexpected %d, want 1 (the stray seq)", sum.Verify.Unexpected)
	}
}
