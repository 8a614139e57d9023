// Command relay runs the DRC-compatible WebSocket relay, configured only by
// environment variables (run `relay -h` for the list).
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/relay-project/relay/relay"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "-h", "-help", "--help", "help":
			usage()
			return
		default:
			fmt.Fprintf(os.Stderr, "relay: unknown argument %q\n\n", os.Args[1])
			usage()
			os.Exit(2)
		}
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `relay: a DRC-compatible WebSocket relay.

Usage: relay        (configured by environment variables only)
       relay -h     (this help)

Environment variables:`)
	relay.PrintEnvVars(os.Stderr)
}

func run() error {
	cfg, err := relay.LoadConfig()
	if err != nil {
		return err
	}
	log := cfg.NewLogger(os.Stderr)
	cfg.Logger = log
	srv, err := relay.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		return fmt.Errorf("relay: listen on %s (PORT, RELAY_HOST): %w", cfg.Addr(), err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	select {
	case err := <-serveErr:
		return fmt.Errorf("relay: serve: %w", err)
	case <-ctx.Done():
	}
	stop()
	log.Info("shutting down", "deadline", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	// Drain WebSocket clients first (readyz turns 503 meanwhile), then stop
	// the listener and wait for plain HTTP requests.
	drainErr := srv.Shutdown(sctx)
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("relay: http shutdown: %w", err)
	}
	if drainErr != nil {
		log.Warn("shutdown deadline reached; remaining clients were cut off", "err", drainErr)
	}
	log.Info("stopped")
	return nil
}
