package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/telehub/telehub/internal/config"
)

// command is one subcommand of telehub. A new one is a function of its
// own file and a row of commandTable.
type command struct {
	name    string // "" for the default command, running the hub
	args    string // what follows the name in the usage line
	summary string // one line for the command list
	help    string // what telehub help <name> adds to the usage line
	// hubFlags: the command takes the hub's flags, environment and file;
	// telehub help <name> then points to them.
	hubFlags bool
	run      func(c *cli, args []string) int
}

// commandTable lists telehub's commands in the order help shows them.
func commandTable() []command {
	return []command{
		{name: "", args: "[flags]", summary: "run the hub", help: hubHelp, hubFlags: true, run: runHub},
		{name: "healthcheck", args: "[flags]", summary: "exit 0 when the configured hub answers /healthz",
			help: healthcheckHelp, hubFlags: true, run: healthcheck},
		{name: "token", args: "[--device ID | --watcher NAME [--topic FILTER]... | --admin] [--quiet]",
			summary: "make a random token and its sha256: line for the configuration", help: tokenHelp, run: token},
		{name: "recover", args: "--from DAMAGED.db --to NEW.db",
			summary: "copy what is readable of a damaged data file into a new one", help: recoverHelp, run: recoverData},
		{name: "version", summary: "print the version (also telehub --version)", run: version},
		{name: "help", args: "[command]", summary: "explain telehub, or one command", run: help},
	}
}

// lookupCommand returns the command of a name; "" is the hub itself.
func lookupCommand(name string) (command, bool) {
	for _, cmd := range commandTable() {
		if cmd.name == name {
			return cmd, true
		}
	}
	return command{}, false
}

// findCommand finds the command among args, wherever it stands among the
// flags, and returns it with the other arguments. --version is the version
// command; -h or --help anywhere asks for the command's help.
func findCommand(args []string) (cmd command, rest []string, help bool) {
	cmd, _ = lookupCommand("")
	found := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		if name, ok := flagName(a); ok {
			switch {
			case name == "h" || name == "help":
				help = true
				continue
			case name == "version" && !found:
				cmd, found = mustCommand("version"), true
				continue
			}
			rest = append(rest, a)
			if !strings.Contains(a, "=") && config.TakesValue(name) && i+1 < len(args) {
				i++
				rest = append(rest, args[i])
			}
			continue
		}
		if c, ok := lookupCommand(a); ok && a != "" && !found {
			cmd, found = c, true
			continue
		}
		rest = append(rest, a)
	}
	return cmd, rest, help
}

func mustCommand(name string) command {
	cmd, _ := lookupCommand(name)
	return cmd
}

// flagName returns the name of a flag argument (-x, --x, --x=v).
func flagName(a string) (string, bool) {
	if len(a) < 2 || a[0] != '-' {
		return "", false
	}
	name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
	name, _, _ = strings.Cut(name, "=")
	return name, name != ""
}

// help is telehub help [command].
func help(c *cli, args []string) int {
	switch len(args) {
	case 0:
		mustCommand("").usage(c.stdout)
		return exitOK
	case 1:
		cmd, ok := lookupCommand(args[0])
		if !ok || args[0] == "" {
			return c.usageError("telehub help", fmt.Errorf("unknown command %q; the commands are %s", args[0], commandNames()))
		}
		cmd.usage(c.stdout)
		return exitOK
	}
	return c.usageError("telehub help", fmt.Errorf("takes one command at most, got %q", args))
}

func commandNames() string {
	var names []string
	for _, cmd := range commandTable() {
		if cmd.name != "" {
			names = append(names, cmd.name)
		}
	}
	return strings.Join(names, ", ")
}

// usage writes the command's help; the hub's lists every command and flag.
func (cmd command) usage(w io.Writer) {
	line := strings.TrimSpace("telehub " + strings.TrimSpace(cmd.name+" "+cmd.args))
	fmt.Fprintf(w, "Usage: %s\n", line)
	if cmd.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.help))
	} else {
		fmt.Fprintf(w, "\n%s.\n", upperFirst(cmd.summary))
	}
	if cmd.name == "" {
		writeCommandList(w)
		fmt.Fprint(w, "\nFlags. Each is also an environment variable (--max-age: TELEHUB_MAX_AGE) and a\nkey of the --config file (max_age); flags win over the environment, which wins\nover the file, which wins over the defaults. Sizes take units (64KiB, 1MiB),\ndurations need one (45s, 24h).\n")
		config.PrintFlags(w)
		return
	}
	if cmd.hubFlags {
		fmt.Fprint(w, "\nIt takes the hub's flags, environment and --config file: telehub --help lists them.\n")
	}
}

func writeCommandList(w io.Writer) {
	fmt.Fprint(w, "\nCommands (a command may stand anywhere among the flags):\n")
	for _, cmd := range commandTable() {
		if cmd.name != "" {
			fmt.Fprintf(w, "  %-12s %s\n", cmd.name, cmd.summary)
		}
	}
	fmt.Fprint(w, "telehub help <command> explains one.\n")
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

const hubHelp = `
telehub runs the IoT device telemetry hub: devices connect over WebSocket or
MQTT, their readings are stored durably, and watchers follow them live over
Server-Sent Events or WebSocket. With no flags it serves HTTP on
127.0.0.1:8080, the embedded MQTT broker on 127.0.0.1:1883 and keeps its data
in ./data. Without credentials it listens on loopback only.`
