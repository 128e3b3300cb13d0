package config

import (
	"fmt"
	"io"
	"strings"
)

// PrintFlags writes every flag with the kind of value it takes, what it
// does, its default and its environment variable, for --help.
func PrintFlags(w io.Writer) {
	def := Default()
	fmt.Fprintf(w, "  --config path\n        YAML configuration file (env TELEHUB_CONFIG); its keys are the flag names with _ for -\n")
	for _, o := range options {
		head := "  --" + o.name
		if !o.isBool() {
			head += " " + o.kind
		}
		fmt.Fprintf(w, "%s\n        %s (default %s; env %s)\n", head, o.usage, showDefault(o, &def), o.env())
	}
}

// showDefault is the default of o as --help shows it.
func showDefault(o option, def *Config) string {
	v := o.show(def)
	switch {
	case v == "" && o.reset != nil:
		return "none"
	case v == "":
		return `""`
	case strings.ContainsAny(v, " \t"):
		return fmt.Sprintf("%q", v)
	}
	return v
}

// Flag describes one flag for documentation: its name, the kind of value
// it takes ("" for a boolean), its default as a flag would give it, its
// environment variable, its YAML key and what it does.
type Flag struct {
	Name, Kind, Default, Env, Key, Usage string
}

// Flags lists telehub's flags (besides --config) in --help order.
func Flags() []Flag {
	def := Default()
	out := make([]Flag, 0, len(options))
	for _, o := range options {
		out = append(out, Flag{Name: o.name, Kind: o.kind, Default: o.show(&def), Env: o.env(), Key: o.key, Usage: o.usage})
	}
	return out
}
