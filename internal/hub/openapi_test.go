package hub

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// openAPIRoutes returns the operations of docs/openapi.yaml as ServeMux
// patterns, "METHOD /path".
func openAPIRoutes(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	var out []string
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options":
				out = append(out, strings.ToUpper(method)+" "+path)
			}
		}
	}
	slices.Sort(out)
	return out
}

// documented returns the OpenAPI form of a ServeMux pattern: "/{$}" is
// "/", and a subtree "/assets/" is "/assets/{file}".
func documented(pattern string) string {
	method, path, _ := strings.Cut(pattern, " ")
	switch {
	case strings.HasSuffix(path, "/{$}"):
		path = strings.TrimSuffix(path, "{$}")
	case strings.HasSuffix(path, "/") && path != "/":
		path += "{file}"
	}
	return method + " " + path
}

// Every route the hub serves is in the API reference, and every operation
// of the reference is served.
func TestOpenAPICoversRoutes(t *testing.T) {
	h := startHub(t, securedConfig(t)) // with credentials: the admin API too
	var served []string
	for _, p := range h.routes {
		served = append(served, documented(p))
	}
	slices.Sort(served)
	spec := openAPIRoutes(t)
	for _, r := range served {
		if !slices.Contains(spec, r) {
			t.Errorf("the hub serves %s, which docs/openapi.yaml does not describe", r)
		}
	}
	for _, r := range spec {
		if !slices.Contains(served, r) {
			t.Errorf("docs/openapi.yaml describes %s, which the hub does not serve", r)
		}
	}
	if len(served) < 15 {
		t.Fatalf("only %d routes recorded: %v", len(served), served)
	}
}
