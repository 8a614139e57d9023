package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/relay-project/relay/relay"
)

// startInprocRelay serves a relay with the default configuration inside this
// process on a free loopback port. It exists for profiling: one
// -cpuprofile then shows the relay's hot path next to the generator's.
// Server CPU and RSS are not reported for it (they would include the
// generator).
func startInprocRelay() (server, error) {
	cfg := relay.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := relay.New(cfg)
	if err != nil {
		return server{}, fmt.Errorf("in-process relay: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return server{}, fmt.Errorf("in-process relay: %w", err)
	}
	hs := &http.Server{Handler: srv}
	go func() { _ = hs.Serve(ln) }()
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "relay-bench: in-process relay:", err)
		}
		_ = hs.Shutdown(ctx)
	}
	return server{tgt: target{name: "relay-inproc", addr: ln.Addr().String(), path: "/"}, stop: stop}, nil
}
