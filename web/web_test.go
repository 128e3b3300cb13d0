package web

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// serve starts the handler on a real loopback server.
func serve(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(Handler())
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, srv *httptest.Server, method, path string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return resp, string(body)
}

func TestServesPageAndAssets(t *testing.T) {
	srv := serve(t)
	tests := []struct {
		path, ctype, contains string
	}{
		{"/", "text/html; charset=utf-8", `<script type="module" src="assets/app.js">`},
		{"/assets/app.js", "text/javascript; charset=utf-8", "new Stream("},
		{"/assets/stream.js", "text/javascript; charset=utf-8", "EventSource"},
		{"/assets/chart.js", "text/javascript; charset=utf-8", "class TimeChart"},
		{"/assets/series.js", "text/javascript; charset=utf-8", "class Series"},
		{"/assets/api.js", "text/javascript; charset=utf-8", "telehub_payloads_rejected_total"},
		{"/assets/model.js", "text/javascript; charset=utf-8", "export function landing"},
		{"/assets/load.js", "text/javascript; charset=utf-8", "last_event_id"},
		{"/assets/notice.js", "text/javascript; charset=utf-8", "?token="},
		{"/assets/remove.js", "text/javascript; charset=utf-8", `"DELETE"`},
		{"/assets/commands.js", "text/javascript; charset=utf-8", "/commands"},
		{"/assets/dom.js", "text/javascript; charset=utf-8", "textContent"},
		{"/assets/app.css", "text/css; charset=utf-8", ":root"},
		{"/assets/favicon.svg", "image/svg+xml", "<svg"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, body := do(t, srv, http.MethodGet, tt.path, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			if got := resp.Header.Get("Content-Type"); got != tt.ctype {
				t.Errorf("Content-Type %q, want %q", got, tt.ctype)
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q, want nosniff", got)
			}
			if resp.Header.Get("ETag") == "" || resp.Header.Get("Cache-Control") != "no-cache" {
				t.Errorf("ETag %q, Cache-Control %q: want an ETag and no-cache",
					resp.Header.Get("ETag"), resp.Header.Get("Cache-Control"))
			}
			if !strings.Contains(body, tt.contains) {
				t.Errorf("body lacks %q", tt.contains)
			}
		})
	}
}

func TestPageHasContentSecurityPolicy(t *testing.T) {
	srv := serve(t)
	resp, _ := do(t, srv, http.MethodGet, "/", nil)
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
}

func TestRejects(t *testing.T) {
	srv := serve(t)
	tests := []struct {
		name, method, path string
		status             int
	}{
		{"unknown asset", http.MethodGet, "/assets/nope.js", http.StatusNotFound},
		{"assets directory", http.MethodGet, "/assets/", http.StatusNotFound},
		{"nested asset path", http.MethodGet, "/assets/x/app.js", http.StatusNotFound},
		{"escape attempt", http.MethodGet, "/assets/..%2fweb.go", http.StatusNotFound},
		{"index by name", http.MethodGet, "/index.html", http.StatusNotFound},
		{"other page", http.MethodGet, "/other", http.StatusNotFound},
		{"post page", http.MethodPost, "/", http.StatusMethodNotAllowed},
		{"delete asset", http.MethodDelete, "/assets/app.js", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, srv, tt.method, tt.path, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want the JSON error body", ct)
			}
			if !strings.Contains(body, `"error":{"code":`) {
				t.Errorf("body %q is not telehub's JSON error", body)
			}
			if tt.status == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("Allow %q, want GET, HEAD", resp.Header.Get("Allow"))
			}
		})
	}
}

func TestHeadAndConditional(t *testing.T) {
	srv := serve(t)
	resp, body := do(t, srv, http.MethodHead, "/assets/app.css", nil)
	if resp.StatusCode != http.StatusOK || body != "" {
		t.Fatalf("HEAD: status %d, body %d bytes; want 200 and no body", resp.StatusCode, len(body))
	}
	etag := resp.Header.Get("ETag")
	resp, _ = do(t, srv, http.MethodGet, "/assets/app.css", map[string]string{"If-None-Match": etag})
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match %s: status %d, want 304", etag, resp.StatusCode)
	}
	resp, _ = do(t, srv, http.MethodGet, "/assets/app.css", map[string]string{"If-None-Match": `"stale"`})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stale If-None-Match: status %d, want 200", resp.StatusCode)
	}
}

// TestSelfContained checks that every asset the page and its modules refer
// to is served, by a relative reference, and that nothing is loaded from
// another origin: the dashboard must work with no network beyond the hub.
func TestSelfContained(t *testing.T) {
	srv := serve(t)
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"|from "\./([^"]+)"`)
	external := regexp.MustCompile(`(?:src|href|url)\s*[=(]\s*["']?(?:https?:)?//|import\s*\(?\s*["'](?:https?:)?//`)
	seen := map[string]bool{}
	queue := []string{"/"}
	for len(queue) > 0 {
		path := queue[0]
		queue = queue[1:]
		if seen[path] {
			continue
		}
		seen[path] = true
		resp, body := do(t, srv, http.MethodGet, path, nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d", path, resp.StatusCode)
			continue
		}
		if loc := external.FindString(body); loc != "" {
			t.Errorf("%s refers to another origin: %q", path, loc)
		}
		if strings.Contains(body, `"/v1/`) {
			t.Errorf("%s calls the API by an absolute path", path)
		}
		for _, m := range refs.FindAllStringSubmatch(body, -1) {
			switch {
			case strings.HasPrefix(m[1], "/"):
				// Relative references keep the page working under a
				// reverse proxy's path prefix.
				t.Errorf("%s: absolute reference %q", path, m[1])
			case m[1] != "":
				queue = append(queue, "/"+m[1])
			case m[2] != "":
				queue = append(queue, "/assets/"+m[2])
			}
		}
	}
	for _, want := range []string{"/assets/app.js", "/assets/stream.js", "/assets/chart.js", "/assets/app.css"} {
		if !seen[want] {
			t.Errorf("%s is not reachable from the page", want)
		}
	}
}

// TestNoMarkupFromData guards the escaping rule: the scripts never build
// HTML from strings, so nothing a device sends can become markup.
func TestNoMarkupFromData(t *testing.T) {
	for name := range Handler().(*handler).assets {
		if !strings.HasSuffix(name, ".js") {
			continue
		}
		body := string(Handler().(*handler).assets[name].body)
		for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
			if strings.Contains(body, sink) {
				t.Errorf("%s uses %s", name, sink)
			}
		}
	}
}

func TestLoadErrors(t *testing.T) {
	page := &fstest.MapFile{Data: []byte("<!doctype html>")}
	tests := []struct {
		name string
		fsys fstest.MapFS
		want error
	}{
		{"no page", fstest.MapFS{"static/assets/app.js": {Data: []byte("")}}, nil},
		{"no assets", fstest.MapFS{"static/index.html": page}, nil},
		{"unknown type", fstest.MapFS{"static/index.html": page, "static/assets/x.bin": {Data: []byte{0}}}, ErrUnknownType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(tt.fsys)
			if err == nil {
				t.Fatal("load succeeded, want an error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEmbeddedFilesAllHaveTypes(t *testing.T) {
	if _, err := load(static); err != nil {
		t.Fatalf("embedded dashboard: %v", err)
	}
}

func BenchmarkServeAsset(b *testing.B) {
	h := Handler()
	req := httptest.NewRequest(http.MethodGet, "/assets/app.js", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// FuzzHandler feeds arbitrary request paths to the handler: only "/" and
// "/assets/{embedded name}" may succeed, everything else is a JSON 404,
// and nothing panics.
func FuzzHandler(f *testing.F) {
	for _, p := range []string{"/", "/assets/app.js", "/assets/", "/assets/../web.go", "/assets//app.js",
		"/assets/app.js/", "/index.html", "//", "/assets/%2e%2e", "/ASSETS/app.js", "/assets/app.js\x00"} {
		f.Add(p)
	}
	h := Handler().(*handler)
	f.Fuzz(func(t *testing.T, path string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.Path = path
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		name, isAsset := strings.CutPrefix(path, "/assets/")
		_, known := h.assets[name]
		want := http.StatusNotFound
		if path == "/" || (isAsset && known) {
			want = http.StatusOK
		}
		if w.Code != want {
			t.Fatalf("GET %q: status %d, want %d", path, w.Code, want)
		}
		if want == http.StatusNotFound && w.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("GET %q: 404 without the JSON error body", path)
		}
	})
}
