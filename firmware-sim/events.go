package firmwaresim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Errors of reading the hub's event log.
var (
	// ErrEventsExpired: the hub no longer retains events verify needs
	// (HTTP 410), so the run cannot be verified.
	ErrEventsExpired = errors.New("hub no longer retains the run's events")
	// ErrHubResponse: the hub answered GET /v1/events with an unexpected
	// status or body.
	ErrHubResponse = errors.New("unexpected answer from hub")
)

// eventsPageLimit is the page size verify asks for (the hub's maximum).
const eventsPageLimit = 10000

// maxPageBytes bounds the body of one events page.
const maxPageBytes = 64 << 20

// storedEvent is one telemetry event as GET /v1/events returns it.
type storedEvent struct {
	ID   string    `json:"id"`
	Kind string    `json:"event"`
	Data eventData `json:"data"`
}

// eventData is the part of an event's data verify looks at.
type eventData struct {
	Device    string  `json:"device"`
	Metric    string  `json:"metric"`
	TS        string  `json:"ts"`
	DeviceSeq *uint64 `json:"device_seq"`
	// DeviceBoot is the reading's boot id, "" when it carried none.
	DeviceBoot string `json:"device_boot"`
}

// parseEventsPage parses one page of GET /v1/events.
func parseEventsPage(b []byte) ([]storedEvent, error) {
	var page []storedEvent
	if err := json.Unmarshal(b, &page); err != nil {
		return nil, fmt.Errorf("%w: events page: %w", ErrHubResponse, err)
	}
	for i := range page {
		if page[i].ID == "" {
			return nil, fmt.Errorf("%w: event %d of page has no id", ErrHubResponse, i)
		}
	}
	return page, nil
}

// eventMillis returns the Unix milliseconds of an event's RFC 3339 ts.
func eventMillis(ts string) (int64, bool) {
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return 0, false
	}
	return t.UnixMilli(), true
}

// readEvents pages through every retained telemetry event of the hub at
// base URL hub, oldest first, and calls visit for each.
func (s *Sim) readEvents(ctx context.Context, hub string, visit func(*storedEvent)) error {
	after := ""
	for {
		page, err := s.eventsPage(ctx, hub, after)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		for i := range page {
			visit(&page[i])
		}
		after = page[len(page)-1].ID
	}
}

// eventsPage fetches the page of the hub's telemetry events after the
// given id.
func (s *Sim) eventsPage(ctx context.Context, hub, after string) ([]storedEvent, error) {
	q := url.Values{"topic": {"telemetry/+/#"}, "limit": {fmt.Sprint(eventsPageLimit)}}
	if after != "" {
		q.Set("after", after)
	}
	u := strings.TrimSuffix(hub, "/") + "/v1/events?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("events request: %w", err)
	}
	s.cfg.setWatchToken(req.Header)
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /v1/events: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPageBytes))
	if err != nil {
		return nil, fmt.Errorf("GET /v1/events: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return parseEventsPage(body)
	case http.StatusGone:
		return nil, fmt.Errorf("%w: %s", ErrEventsExpired, bytesHead(body))
	case http.StatusUnauthorized, http.StatusForbidden:
		return nil, fmt.Errorf("%w: GET /v1/events: HTTP %d: %s (verify needs a watcher token covering telemetry/#: --watch-token)",
			ErrHubResponse, resp.StatusCode, bytesHead(body))
	}
	return nil, fmt.Errorf("%w: GET /v1/events: HTTP %d: %s", ErrHubResponse, resp.StatusCode, bytesHead(body))
}

// bytesHead returns the start of b for an error message.
func bytesHead(b []byte) string {
	const n = 200
	if len(b) > n {
		b = b[:n]
	}
	return strings.TrimSpace(string(b))
}
