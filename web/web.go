package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var files embed.FS

// Handler serves the dashboard: GET / answers the page, GET /assets/...
// its script and style sheet. Anything else under /assets/ is 404.
func Handler() http.Handler {
	root, err := fs.Sub(files, "static")
	if err != nil {
		// fs.Sub fails only for an invalid path, and "static" is a
		// constant that go:embed has already checked.
		return http.NotFoundHandler()
	}
	return http.FileServerFS(root)
}
