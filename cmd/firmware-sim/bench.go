package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	firmwaresim "github.com/telehub/telehub/firmware-sim"
)

// runBench runs the lean load mode with args and prints its summary.
func runBench(args []string, stdout, stderr io.Writer) int {
	var cfg firmwaresim.BenchConfig
	fs := flag.NewFlagSet("firmware-sim bench", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	asJSON := fs.Bool("json", false, "print the summary as one JSON object")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := firmwaresim.RunBench(ctx, cfg)
	if sum != nil {
		if perr := printBench(sum, *asJSON, stdout); perr != nil {
			fmt.Fprintln(stderr, "firmware-sim bench:", perr)
			return 1
		}
	}
	switch {
	case errors.Is(err, firmwaresim.ErrInvalidConfig):
		fmt.Fprintln(stderr, "firmware-sim bench:", err)
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "firmware-sim bench:", err)
		return 1
	}
	return 0
}

func printBench(sum *firmwaresim.BenchSummary, asJSON bool, w io.Writer) error {
	if asJSON {
		return json.NewEncoder(w).Encode(sum)
	}
	return sum.WriteText(w)
}
