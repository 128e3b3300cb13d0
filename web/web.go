package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/telehub/telehub/internal/httpx"
)

// static holds the page and everything under assets/. The directory is
// served as is: no build step produces it.
//
//go:embed static
var static embed.FS

// contentSecurityPolicy lets the page load only its own assets and talk
// only to its own origin. Device ids, values and error messages are put
// into the DOM as text, never as markup; this policy is the second line of
// defence if that ever fails.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// ErrUnknownType is returned when an embedded file's extension has no
// content type in contentType; tests catch it before a build ships.
var ErrUnknownType = errors.New("web: no content type for this file extension")

// contentType is the type of a file the dashboard is made of, by
// extension. A fixed table, not mime.TypeByExtension: that one reads the
// host's mime.types, which would let the machine change what the hub
// answers.
func contentType(ext string) (string, bool) {
	switch ext {
	case ".html":
		return "text/html; charset=utf-8", true
	case ".css":
		return "text/css; charset=utf-8", true
	case ".js":
		return "text/javascript; charset=utf-8", true
	case ".svg":
		return "image/svg+xml", true
	case ".txt":
		return "text/plain; charset=utf-8", true
	}
	return "", false
}

// file is one embedded file ready to serve.
type file struct {
	name  string
	body  []byte
	ctype string
	etag  string
}

// handler serves the page at / and its assets under /assets/.
type handler struct {
	index  file
	assets map[string]file // by name under assets/, e.g. "app.js"
}

// Handler returns the dashboard handler. It answers GET and HEAD of / with
// the page and of /assets/{name} with that asset; any other path is 404
// with telehub's JSON error body, and any other method 405. Responses carry
// an ETag and Cache-Control: no-cache, so a browser revalidates cheaply and
// picks up a new hub version at once.
func Handler() http.Handler {
	h, err := load(static)
	if err != nil {
		// Reading files compiled into the binary cannot fail short of a
		// broken build; answer 500 rather than serve half a page.
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			httpx.Error(w, http.StatusInternalServerError, httpx.CodeInternal, err.Error())
		})
	}
	return h
}

// load reads the page and its assets from fsys.
func load(fsys fs.FS) (*handler, error) {
	index, err := readFile(fsys, "static/index.html")
	if err != nil {
		return nil, err
	}
	h := &handler{index: index, assets: make(map[string]file)}
	entries, err := fs.ReadDir(fsys, "static/assets")
	if err != nil {
		return nil, fmt.Errorf("web: list assets: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		f, err := readFile(fsys, "static/assets/"+e.Name())
		if err != nil {
			return nil, err
		}
		h.assets[e.Name()] = f
	}
	return h, nil
}

func readFile(fsys fs.FS, name string) (file, error) {
	body, err := fs.ReadFile(fsys, name)
	if err != nil {
		return file{}, fmt.Errorf("web: read %s: %w", name, err)
	}
	ctype, ok := contentType(path.Ext(name))
	if !ok {
		return file{}, fmt.Errorf("web: %s: %w", name, ErrUnknownType)
	}
	sum := sha256.Sum256(body)
	return file{
		name:  path.Base(name),
		body:  body,
		ctype: ctype,
		etag:  `"` + hex.EncodeToString(sum[:12]) + `"`,
	}, nil
}

// ServeHTTP implements http.Handler.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpx.Error(w, http.StatusMethodNotAllowed, httpx.CodeBadRequest, "method "+r.Method+" not allowed")
		return
	}
	f, ok := h.lookup(r.URL.Path)
	if !ok {
		httpx.Error(w, http.StatusNotFound, httpx.CodeNotFound, "no such page: "+r.URL.Path)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", f.ctype)
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("ETag", f.etag)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	if f.name == "index.html" {
		hdr.Set("Content-Security-Policy", contentSecurityPolicy)
		hdr.Set("X-Frame-Options", "DENY")
	}
	// ServeContent answers If-None-Match from the ETag set above, and
	// ranges; a zero modtime leaves Last-Modified out.
	http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(f.body))
}

// lookup maps a request path to an embedded file. Only "/" and a plain
// file name directly under /assets/ match.
func (h *handler) lookup(p string) (file, bool) {
	if p == "/" {
		return h.index, true
	}
	name, ok := strings.CutPrefix(p, "/assets/")
	if !ok || name == "" || strings.Contains(name, "/") {
		return file{}, false
	}
	f, ok := h.assets[name]
	return f, ok
}
