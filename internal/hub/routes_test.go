package hub

import (
	"encoding/json"
	"net/http"
	"testing"
)

// Every error of the HTTP surface is the JSON body of SPEC §7, including
// requests no route or library handles.
func TestErrorsAreJSON(t *testing.T) {
	h := startHub(t, testConfig(t))
	tests := []struct {
		method, path string
		status       int
		code         string
	}{
		{http.MethodGet, "/v1/stream/ws", 400, "bad_request"},     // not a WebSocket upgrade
		{http.MethodGet, "/v1/devices/d1/ws", 400, "bad_request"}, // same, device side
		{http.MethodPost, "/v1/events", 405, "method_not_allowed"},
		{http.MethodDelete, "/v1/devices/d1", 405, "method_not_allowed"},
		{http.MethodGet, "/v2/nothing", 404, "not_found"},
		{http.MethodGet, "/v1/devices/unknown", 404, "not_found"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, "http://"+h.HTTPAddr()+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error struct{ Code, Message string }
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tt.status || body.Error.Code != tt.code || body.Error.Message == "" {
			t.Errorf("%s %s: %d %+v (%v), want %d with code %s", tt.method, tt.path, resp.StatusCode, body, err, tt.status, tt.code)
		}
	}
}
