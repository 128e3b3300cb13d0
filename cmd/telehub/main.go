// Command telehub runs the IoT device telemetry hub: devices over WebSocket
// and MQTT in, durable storage, live watchers over SSE and WebSocket out.
//
//	telehub [flags]            run the hub (see telehub --help)
//	telehub version            print the version
//	telehub healthcheck [flags] exit 0 when the configured hub answers /healthz
//	telehub recover --from DAMAGED.db --to NEW.db  copy what is readable of a damaged data file
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/telehub/telehub/internal/config"
	"github.com/telehub/telehub/internal/hub"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			fmt.Fprintln(stdout, "telehub", hub.Version)
			return 0
		case "healthcheck":
			return healthcheck(args[1:], getenv, stderr)
		case "recover":
			return recoverData(args[1:], stdout, stderr)
		}
	}
	cfg, err := config.Load(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "telehub:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, stderr); err != nil {
		fmt.Fprintln(stderr, "telehub:", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, cfg config.Config, logOut io.Writer) error {
	logger := hub.NewLogger(cfg, logOut)
	h, err := hub.New(cfg, logger)
	if err != nil {
		return err
	}
	if err := h.Start(ctx); err != nil {
		_ = h.Shutdown(context.Background())
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case serveErr = <-h.Err():
		logger.Error("serving failed, shutting down", "err", serveErr)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return errors.Join(serveErr, h.Shutdown(shutdownCtx))
}

func healthcheck(args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := config.Load(args, getenv, stderr)
	if err != nil && !errors.Is(err, config.ErrInvalid) {
		fmt.Fprintln(stderr, "telehub healthcheck:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hub.Healthcheck(ctx, cfg); err != nil {
		fmt.Fprintln(stderr, "telehub", err)
		return 1
	}
	return 0
}
