package hub

import (
	"context"
	"errors"
	"net"
	"net/http"
)

// parts lists the hub's long-lived parts that were built, in the order
// they stop: first the HTTP listener (nothing new arrives), then the
// device and watcher connections the HTTP server does not close itself
// and the requests waiting for a command, the servers, the MQTT side, liveness, command expiry, and storage last, once nothing
// writes to it any more. They start in the reverse order.
func (h *Hub) parts() []part {
	var ps []part
	add := func(built bool, p part) {
		if built {
			ps = append(ps, p)
		}
	}
	add(h.httpLn != nil, part{name: "http listener", stop: h.stopAccepting})
	add(h.wsDev != nil, part{name: "websocket devices", stop: h.wsDev.Shutdown})
	add(h.fanout != nil, part{name: "watchers", start: h.fanout.Start, stop: h.fanout.Shutdown})
	add(h.commands != nil, part{name: "command waits", stop: h.commands.EndWaits})
	add(h.server != nil, part{name: "http server",
		run:  func(context.Context) error { return serve(h.server, h.httpLn) },
		stop: func(ctx context.Context) error { return ignoreClosed(h.server.Shutdown(ctx)) }})
	add(h.debug != nil, part{name: "debug server",
		run:  func(context.Context) error { return serve(h.debug, h.debugLn) },
		stop: h.debug.Shutdown})
	add(h.debugLn != nil, part{name: "debug listener", stop: closeListener(h.debugLn)})
	add(h.broker != nil, part{name: "embedded mqtt broker", start: h.broker.Start, stop: h.broker.Shutdown})
	add(h.cluster != nil, part{name: "cluster", start: h.cluster.Start, stop: h.cluster.Shutdown})
	add(h.external != nil, part{name: "external mqtt broker", run: h.external.Start, stop: h.external.Shutdown})
	add(h.liveness != nil, part{name: "liveness", start: h.liveness.Start, stop: h.liveness.Shutdown})
	add(h.commands != nil, part{name: "commands",
		start: func(context.Context) error { h.commands.Start(); return nil }, stop: h.commands.Shutdown})
	add(h.store != nil, part{name: "storage", stop: closer(h.store.Close)})
	return ps
}

// stopAccepting closes the HTTP listener by hand, so that no device or
// watcher arrives while the open ones are closed; http.Server.Shutdown
// closing it again later is expected.
func (h *Hub) stopAccepting(context.Context) error {
	if h.server != nil {
		h.server.SetKeepAlivesEnabled(false)
	}
	return ignoreClosed(h.httpLn.Close())
}

// serve serves srv on ln until it is shut down.
func serve(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// closeListener returns the stop of a listener that may be closed already
// (by its server's Shutdown).
func closeListener(ln net.Listener) func(context.Context) error {
	return func(context.Context) error { return ignoreClosed(ln.Close()) }
}

// closer adapts a Close method to a part's stop.
func closer(close func() error) func(context.Context) error {
	return func(context.Context) error { return close() }
}

// ignoreClosed drops the error of closing what was closed already.
func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
