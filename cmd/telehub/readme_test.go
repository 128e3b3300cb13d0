package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/telehub/telehub/internal/config"
)

// kindWords says what a flag's value is in the README's table.
var kindWords = map[string]string{
	"":          "boolean",
	"host:port": "host:port",
	"duration":  "duration (`45s`, `24h`)",
	"size":      "size in bytes (`65536`, `64KiB`, `1MiB`)",
	"int":       "whole number",
	"number":    "number",
	"list":      "list (repeat the flag; commas in the environment)",
}

// flagsTable is the README's table of flags, made from the option table.
func flagsTable() string {
	var b strings.Builder
	b.WriteString("| flag | value | default | environment | what it does |\n|---|---|---|---|---|\n")
	b.WriteString("| `--config` | path | none | `TELEHUB_CONFIG` | YAML configuration file |\n")
	for _, f := range config.Flags() {
		kind, ok := kindWords[f.Kind]
		if !ok {
			kind = f.Kind
		}
		def := "`" + f.Default + "`"
		if f.Default == "" {
			def = "empty"
		}
		fmt.Fprintf(&b, "| `--%s` | %s | %s | `%s` | %s |\n", f.Name, kind, def, f.Env, f.Usage)
	}
	return b.String()
}

// The README's table of flags is the option table's.
func TestREADMEFlagsTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := flagsTable(); !strings.Contains(string(readme), want) {
		t.Fatalf("README.md does not hold the table of flags; it should read:\n\n%s", want)
	}
}
