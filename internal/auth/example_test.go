package auth_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/telehub/telehub/internal/auth"
	"github.com/telehub/telehub/internal/topic"
)

func ExampleCovers() {
	scope, _ := topic.ParseFilter("telemetry/#")
	for _, s := range []string{"telemetry/+/temp", "telemetry", "presence/#", "#"} {
		f, _ := topic.ParseFilter(s)
		fmt.Println(s, auth.Covers(scope, f))
	}
	// Output:
	// telemetry/+/temp true
	// telemetry true
	// presence/# false
	// # false
}

func ExampleAuth_IssueWatcher() {
	dir, _ := os.MkdirTemp("", "telehub-auth")
	defer os.RemoveAll(dir)
	a, err := auth.New(auth.Config{
		Path:       filepath.Join(dir, auth.FileName),
		AdminToken: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	scope, _ := topic.ParseFilter("telemetry/pump-7/#")
	token, err := a.IssueWatcher("pump-dashboard", []topic.Filter{scope})
	if err != nil {
		fmt.Println(err)
		return
	}
	scopes, ok := a.Watcher(token)
	want, _ := topic.ParseFilter("telemetry/pump-7/temp")
	other, _ := topic.ParseFilter("telemetry/+/temp")
	fmt.Println(ok, auth.AllowFilter(scopes, want), auth.AllowFilter(scopes, other))
	fmt.Println(a.Watchers()[0].Name, a.Watchers()[0].Topics)
	// Output:
	// true true false
	// pump-dashboard [telemetry/pump-7/#]
}
