package httpx

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestError(t *testing.T) {
	rec := httptest.NewRecorder()
	Error(rec, http.StatusGone, CodeGone, "id expired")
	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusGone || rec.Header().Get("Content-Type") != "application/json" ||
		body.Error.Code != "gone" || body.Error.Message != "id expired" {
		t.Fatalf("%d %v %+v", rec.Code, rec.Header(), body)
	}
}

func TestRequestToken(t *testing.T) {
	tests := []struct {
		auth, query, want string
	}{
		{"Bearer abc", "", "abc"},
		{"bearer  abc ", "", "abc"},
		{"Bearer abc", "token=xyz", "abc"},
		{"Basic abc", "token=xyz", "xyz"},
		{"Bearer ", "token=xyz", "xyz"},
		{"", "token=x%2By", "x+y"},
		{"", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.auth+"?"+tt.query, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/v1/devices/d1/ws?"+tt.query, nil)
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			if got := RequestToken(r); got != tt.want {
				t.Fatalf("RequestToken = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzRequestToken(f *testing.F) {
	f.Add("Bearer abc", "token=xyz")
	f.Add("Basic eDp5", "token=%zz")
	f.Add("Bearer", "")
	f.Fuzz(func(t *testing.T, auth, query string) {
		r := httptest.NewRequest(http.MethodGet, "/v1/devices/d1/ws", nil)
		r.URL.RawQuery = query
		r.Header.Set("Authorization", auth)
		token := RequestToken(r)
		if scheme, rest, ok := strings.Cut(auth, " "); ok && strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(rest) != "" {
			if token != strings.TrimSpace(rest) {
				t.Fatalf("RequestToken = %q with Authorization %q", token, auth)
			}
		}
	})
}

func TestUpgradeProblem(t *testing.T) {
	ok := func(r *http.Request) {
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Connection", "keep-alive, Upgrade")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	}
	tests := []struct {
		name    string
		edit    func(r *http.Request)
		mention string
	}{
		{"valid", func(r *http.Request) {}, ""},
		{"plain GET", func(r *http.Request) { r.Header = http.Header{} }, "Upgrade: websocket"},
		{"no connection upgrade", func(r *http.Request) { r.Header.Set("Connection", "keep-alive") }, "Connection"},
		{"old version", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Version", "8") }, "version"},
		{"no version", func(r *http.Request) { r.Header.Del("Sec-WebSocket-Version") }, "version"},
		{"no key", func(r *http.Request) { r.Header.Del("Sec-WebSocket-Key") }, "Key"},
		{"HTTP/2", func(r *http.Request) { r.ProtoMajor, r.ProtoMinor = 2, 0 }, "HTTP/1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/v1/stream/ws", nil)
			ok(r)
			tt.edit(r)
			got := UpgradeProblem(r)
			if (tt.mention == "") != (got == "") || !strings.Contains(got, tt.mention) {
				t.Fatalf("UpgradeProblem = %q, want one mentioning %q", got, tt.mention)
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/devices/{id}", func(w http.ResponseWriter, r *http.Request) {
		JSON(w, http.StatusOK, map[string]string{"id": r.PathValue("id")})
	})
	srv := httptest.NewServer(Routes(mux))
	defer srv.Close()
	tests := []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{http.MethodGet, "/v1/devices/d1", 200, "", ""},
		{http.MethodPost, "/v1/devices/d1", 405, CodeMethodNotAllowed, "GET, HEAD"},
		{http.MethodDelete, "/v1/devices/d1", 405, CodeMethodNotAllowed, "GET, HEAD"},
		{http.MethodGet, "/nope", 404, CodeNotFound, ""},
		{http.MethodPost, "/nope", 404, CodeNotFound, ""},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			ID    string
			Error struct{ Code, Message string }
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || body.Error.Code != tt.code || resp.Header.Get("Allow") != tt.allow {
			t.Errorf("%s %s: %d %+v Allow %q, want %d %q Allow %q", tt.method, tt.path, resp.StatusCode, body,
				resp.Header.Get("Allow"), tt.status, tt.code, tt.allow)
		}
		if tt.status == 200 && body.ID != "d1" {
			t.Errorf("path value lost: %+v", body)
		}
	}
}
