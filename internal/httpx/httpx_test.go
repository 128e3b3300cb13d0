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
