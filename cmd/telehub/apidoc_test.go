package main

import (
	"os"
	"strings"
	"testing"

	"github.com/telehub/telehub/internal/config"
)

// The defaults in the API reference's table of flags are the hub's.
func TestAPIFlagsTableDefaults(t *testing.T) {
	doc, err := os.ReadFile("../../docs/API.md")
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]config.Flag{}
	for _, f := range config.Flags() {
		flags[f.Name] = f
	}
	_, table, ok := strings.Cut(string(doc), "\n## Flags\n")
	if !ok {
		t.Fatal("docs/API.md has no Flags section")
	}
	rows := 0
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`--") {
			continue
		}
		rows++
		names := strings.Split(cells[1], " / ")
		defaults := strings.Split(cells[2], " / ")
		for i, name := range names {
			f, ok := flags[strings.Trim(strings.TrimSpace(name), "`-")]
			if !ok {
				t.Errorf("docs/API.md lists %s, which is not a flag", strings.TrimSpace(name))
				continue
			}
			shown := strings.TrimSpace(defaults[min(i, len(defaults)-1)])
			if !documentedDefault(f, shown) {
				t.Errorf("docs/API.md gives --%s the default %s; it is %q", f.Name, shown, f.Default)
			}
		}
	}
	if rows == 0 {
		t.Fatal("docs/API.md's Flags section has no rows")
	}
}

// documentedDefault says whether shown, a default as the API reference's
// table writes it, is f's default: the value in backticks, "none" or
// "empty" for an empty one, or another flag whose value it takes.
func documentedDefault(f config.Flag, shown string) bool {
	switch {
	case shown == "none" || shown == "empty":
		return f.Default == ""
	case strings.HasPrefix(shown, "`--"):
		return f.Default == "0s" || f.Default == "0"
	case !strings.HasPrefix(shown, "`"):
		return false
	}
	shown = strings.Trim(shown, "`")
	if f.Kind == "size" {
		a, errA := config.ParseSize(shown)
		b, errB := config.ParseSize(f.Default)
		return errA == nil && errB == nil && a == b
	}
	return shown == f.Default
}
