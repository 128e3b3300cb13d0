// Command firmware-sim runs simulated IoT devices against a telehub hub:
// a load generator, a fault injector and, with --verify, a check
// that every confirmed reading is stored exactly once.
//
// Examples:
//
//	firmware-sim --devices 100 --rate 10 --duration 30s
//	firmware-sim --transport mixed --format senml --drop-rate 0.01 --malformed-rate 0.01 --verify --json
//	firmware-sim --transport mqtt --qos 0 --devices 1000 --duration 0   # until Ctrl-C
//	firmware-sim --transport mixed --devices 100 --reboot-rate 0.01 --drop-rate 0.01 --verify
//	firmware-sim --transport mixed --devices 10 --duration 0 --command-delay 200ms --command-fail-rate 0.1
//	firmware-sim --devices 200 --rate 50 --watchers 100 --watch-transport ws --json
//	firmware-sim --hub https://hub:8080 --mqtt ssl://hub:1883 --ca hub.pem --transport mixed \
//	    --token-pattern 'secret-{id}' --watch-token "$WATCHER" --verify
//	firmware-sim bench --publishers 200 --duration 15s --json   # lean MQTT QoS 1 load, max rate
//	firmware-sim bench --rate 1000 --watchers 100 --watch-mqtt tcp://127.0.0.1:1884
//
// Devices answer the hub's commands: set_interval ({"interval":"500ms"}
// or milliseconds), ping and reboot; any other name fails.
// --command-delay is how long a device takes before it answers,
// --command-fail-rate the share of commands it answers failed.
//
// "firmware-sim bench" is the lean load mode: raw MQTT publishers with
// many QoS 1 publishes in flight and watchers on a hub's SSE stream or a
// plain MQTT broker, measuring latency from the send time in each payload
// (firmware-sim bench --help lists its flags).
//
// With credentials on the hub, each device needs its token (--token for
// all, --token-file or --token-pattern for one each) and --verify and the
// watchers a watcher token (--watch-token). A run in which a device never
// connected fails, and says which and why.
//
// A progress line goes to stderr every second (--quiet turns it off); the
// summary goes to stdout, as text or with --json as one JSON object.
//
// The first SIGINT or SIGTERM ends the run: the devices stop taking
// readings, outstanding acks get --drain-timeout, the summary is printed;
// a second signal kills the process.
//
// Exit codes: 0 success, 1 run or verify failure or readings left
// unacknowledged, 2 bad flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	firmwaresim "github.com/telehub/telehub/firmware-sim"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args, runs the simulation until it ends or SIGINT/SIGTERM
// arrives (a second signal kills the process), prints the summary to
// stdout and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "bench" {
		return runBench(args[1:], stdout, stderr)
	}
	var cfg firmwaresim.Config
	fs := flag.NewFlagSet("firmware-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.RegisterFlags(fs)
	asJSON := fs.Bool("json", false, "print the final summary as one JSON object")
	quiet := fs.Bool("quiet", false, "no progress line on stderr")
	var level slog.Level = slog.LevelWarn
	fs.TextVar(&level, "log-level", level, "log level: debug, info, warn, error")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	sim, err := firmwaresim.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "firmware-sim:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop)
	sum, err := sim.Run(ctx)
	return report(sum, err, *asJSON, stdout, stderr)
}

// parseFlags parses args: --help prints the flags to stdout (exit 0), a
// bad flag prints one line saying what is wrong (exit 2).
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (int, bool) {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fmt.Fprintln(stdout, "Usage: firmware-sim [flags]")
		fs.PrintDefaults()
		return 0, false
	case err != nil:
		fmt.Fprintf(stderr, "firmware-sim: %v (firmware-sim --help lists the flags)\n", err)
		return 2, false
	}
	return 0, true
}

// report prints the summary and any error, and returns the exit code.
func report(sum *firmwaresim.Summary, err error, asJSON bool, stdout, stderr io.Writer) int {
	if sum != nil {
		if perr := printSummary(sum, asJSON, stdout); perr != nil {
			err = errors.Join(err, perr)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "firmware-sim:", err)
		return 1
	}
	if sum.Unacked > 0 {
		fmt.Fprintf(stderr, "firmware-sim: %d readings were not acknowledged by the hub\n", sum.Unacked)
	}
	if sum.Failed() {
		return 1
	}
	return 0
}

func printSummary(sum *firmwaresim.Summary, asJSON bool, w io.Writer) error {
	if !asJSON {
		return sum.WriteText(w)
	}
	enc := json.NewEncoder(w)
	return enc.Encode(sum)
}
