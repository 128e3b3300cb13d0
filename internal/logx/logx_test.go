package logx

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
)

func TestOr(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, nil))
	if Or(l) != l {
		t.Error("Or replaced a given logger")
	}
	d := Or(nil)
	if d == nil || d.Enabled(context.Background(), slog.LevelError) {
		t.Error("the default logger is not a discarding one")
	}
}
