package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/telehub/telehub/internal/httpx"
	"github.com/telehub/telehub/internal/topic"
	"github.com/telehub/telehub/storage"
)

// Limits of GET /v1/devices.
const (
	defaultDeviceLimit = 1000
	maxDeviceLimit     = 10_000
	// deviceChunk is the most device records one read transaction returns.
	deviceChunk = 1024
)

// deviceQuery is the parsed query of GET /v1/devices.
type deviceQuery struct {
	limit         int
	after, prefix string
	online        *bool // nil: either
}

// parseDeviceQuery validates the query of GET /v1/devices.
func parseDeviceQuery(q url.Values) (deviceQuery, error) {
	dq := deviceQuery{limit: defaultDeviceLimit, after: q.Get("after"), prefix: q.Get("prefix")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return dq, fmt.Errorf("limit %q: must be a whole number from 1 to %d", s, maxDeviceLimit)
		}
		dq.limit = min(n, maxDeviceLimit)
	}
	if dq.after != "" {
		if err := topic.ValidDeviceID(dq.after); err != nil {
			return dq, fmt.Errorf("after: %v", err)
		}
	}
	if dq.prefix != "" && !validIDPrefix(dq.prefix) {
		return dq, fmt.Errorf("prefix %q: must be the start of a device id (%s)", dq.prefix, topic.NameRule)
	}
	if s := q.Get("online"); s != "" {
		on, err := strconv.ParseBool(s)
		if err != nil || (s != "true" && s != "false") {
			return dq, fmt.Errorf("online %q: must be true or false", s)
		}
		dq.online = &on
	}
	return dq, nil
}

// validIDPrefix reports whether some valid device id starts with p.
func validIDPrefix(p string) bool {
	return len(p) <= topic.MaxNameLen && topic.ValidName(p)
}

// listDevices is GET /v1/devices: one page of devices sorted by id, with a
// Link to the next page when more remain.
func (a *API) listDevices(w http.ResponseWriter, r *http.Request) {
	dq, err := parseDeviceQuery(r.URL.Query())
	if err != nil {
		httpx.Error(w, http.StatusBadRequest, httpx.CodeBadRequest, err.Error())
		return
	}
	page, more, err := a.devicePage(dq, accessOf(r))
	if err != nil {
		a.internalError(w, "reading devices", err)
		return
	}
	if more {
		setNextLink(w, r, "after", page[len(page)-1].ID)
	}
	writeDevices(w, page)
}

// devicePage reads the devices of one page in chunks of short read
// transactions, and reports whether more devices match after it.
func (a *API) devicePage(dq deviceQuery, acc access) (page []deviceSummary, more bool, err error) {
	after := dq.after
	for {
		devs, next, err := a.cfg.Store.ScanDevices(after, dq.prefix, deviceChunk)
		if err != nil {
			return nil, false, err
		}
		for _, d := range devs {
			s, ok := a.summary(d, dq, acc)
			if !ok {
				continue
			}
			if len(page) == dq.limit {
				return page, true, nil
			}
			page = append(page, s)
		}
		if next == "" {
			return page, false, nil
		}
		after = next
	}
}

// summary returns the list element of d and whether the request sees it.
func (a *API) summary(d storage.Device, dq deviceQuery, acc access) (deviceSummary, bool) {
	if !acc.seesDevice(d.ID) {
		return deviceSummary{}, false
	}
	online, transport, seen := a.liveness(d)
	if dq.online != nil && online != *dq.online {
		return deviceSummary{}, false
	}
	metrics := d.Metrics
	if metrics == nil {
		metrics = []string{}
	}
	return deviceSummary{ID: d.ID, Online: online, Transport: transport, LastSeen: seen, Metrics: metrics,
		seqEpoch: epochOf(d)}, true
}

// writeDevices writes page as a JSON array, one element at a time.
func writeDevices(w http.ResponseWriter, page []deviceSummary) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := json.NewEncoder(bw)
	_ = bw.WriteByte('[')
	for i := range page {
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		// The status is out; a failed write means the client left.
		if enc.Encode(&page[i]) != nil {
			return
		}
	}
	_, _ = bw.WriteString("]\n")
	_ = bw.Flush()
}
