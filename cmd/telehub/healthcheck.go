package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/telehub/telehub/internal/config"
	"github.com/telehub/telehub/internal/hub"
)

const healthcheckHelp = `
Asks GET /healthz of the hub that the same flags, environment and --config
file configure (its --http-addr, over HTTPS with --tls-cert; a hub listening on
every interface is asked on loopback). Exits 0 when it answers 200, 1 when it
does not, 2 on a bad command line. The container image's HEALTHCHECK runs it.`

// healthcheck is telehub healthcheck [flags].
func healthcheck(c *cli, args []string) int {
	cl, err := config.Parse(args)
	if err == nil && len(cl.Args) > 0 {
		err = fmt.Errorf("unexpected argument %q", cl.Args[0])
	}
	if err != nil {
		return c.usageError("telehub healthcheck", err)
	}
	cfg, err := cl.Config(c.env)
	// A configuration the hub would refuse (the loopback rule) can still
	// name the address to check; anything else cannot.
	if err != nil && !errors.Is(err, config.ErrInvalid) {
		return c.usageError("telehub healthcheck", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hub.Healthcheck(ctx, cfg); err != nil {
		fmt.Fprintln(c.stderr, "telehub", err)
		return exitFail
	}
	return exitOK
}
