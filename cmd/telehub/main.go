// Command telehub runs the IoT device telemetry hub: devices over WebSocket
// and MQTT in, durable storage, live watchers over SSE and WebSocket out.
//
//	telehub [flags]              run the hub (telehub --help lists the flags)
//	telehub healthcheck [flags]  exit 0 when the configured hub answers /healthz
//	telehub token [flags]        make a token and its sha256: line
//	telehub recover --from DAMAGED.db --to NEW.db
//	                             copy what is readable of a damaged data file
//	telehub version              print the version (also --version)
//	telehub help [command]       explain telehub or one command
//
// A command may stand anywhere among the flags.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/telehub/telehub/internal/config"
	"github.com/telehub/telehub/internal/hub"
)

func main() {
	os.Exit(run(os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the hub or the command failed
	exitUsage = 2 // a bad command line or configuration
)

// cli is what every command gets: the environment and where to write.
type cli struct {
	env            config.Env
	stdout, stderr io.Writer
}

func run(args []string, env config.Env, stdout, stderr io.Writer) int {
	c := &cli{env: env, stdout: stdout, stderr: stderr}
	cmd, rest, help := findCommand(args)
	if help {
		cmd.usage(c.stdout)
		return exitOK
	}
	return cmd.run(c, rest)
}

// usageError reports a bad command line and where to read about it.
func (c *cli) usageError(cmd string, err error) int {
	fmt.Fprintf(c.stderr, "%s: %v\n", cmd, err)
	return exitUsage
}

// runHub is the default command: run the hub until SIGINT or SIGTERM.
func runHub(c *cli, args []string) int {
	cl, err := config.Parse(args)
	if err != nil {
		return c.usageError("telehub", err)
	}
	if len(cl.Args) > 0 {
		return c.usageError("telehub", fmt.Errorf("unknown command %q (telehub help lists the commands)", cl.Args[0]))
	}
	cfg, err := cl.Config(c.env)
	if err != nil {
		return c.usageError("telehub", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, c.stderr); err != nil {
		fmt.Fprintln(c.stderr, "telehub:", err)
		return exitFail
	}
	return exitOK
}

func serve(ctx context.Context, cfg config.Config, logOut io.Writer) error {
	h, err := hub.New(cfg, hub.NewLogger(cfg, logOut))
	if err != nil {
		return err
	}
	return h.Run(ctx)
}

// version prints the version; other arguments, like the flags beside
// --version, do not matter.
func version(c *cli, _ []string) int {
	fmt.Fprintln(c.stdout, "telehub", hub.Version)
	return exitOK
}
