// Command relay runs the DRC-compatible WebSocket relay, configured only by
// environment variables (run `relay -h` for the list).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/relay-project/relay/relay"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "-h", "-help", "--help", "help":
			usage()
			return
		case "-version", "--version", "version":
			fmt.Println("relay", version)
			return
		case "healthcheck":
			os.Exit(healthcheck())
		case "plugins":
			os.Exit(pluginsCommand(os.Args[2:]))
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
	fmt.Fprintf(os.Stderr, `relay %s: a DRC-compatible WebSocket relay.

Usage: relay              serve (configured by environment variables only)
       relay healthcheck  exit 0 if the relay here is ready, 1 if not
       relay plugins precompile -cache DIR FILE.wasm...
                          compile plugins into the cache DIR
                          (the directory RELAY_PLUGIN_CACHE_DIR names)
       relay -version     print the version
       relay -h           this help

Environment variables:
`, version)
	relay.PrintEnvVars(os.Stderr)
	fmt.Fprintf(os.Stderr, `
Read by the Go runtime:
GOGC (default %d here; Go's own is 100)
    How far the heap may grow past what was live at the last collection,
    in per cent: lower holds less memory per idle connection, at more GC
    work per connect.
GOMEMLIMIT (default none)
    A soft memory limit (e.g. 80%% of the container's memory): the
    collector works harder only as it nears.
`, defaultGOGC)
}

// healthcheck asks the local relay's /readyz, for container health checks
// in images without a shell.
func healthcheck() int {
	cfg, err := relay.LoadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(cfg.Port))
	if cfg.MetricsAddr != "" {
		_, port, err := net.SplitHostPort(cfg.MetricsAddr)
		if err == nil {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
	}
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + addr + "/readyz")
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay healthcheck:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "relay healthcheck: /readyz answered", resp.Status)
		return 1
	}
	return 0
}

// pluginsCommand runs `relay plugins precompile -cache DIR FILE...`.
func pluginsCommand(args []string) int {
	if len(args) < 4 || args[0] != "precompile" || args[1] != "-cache" {
		fmt.Fprintln(os.Stderr, "usage: relay plugins precompile -cache DIR FILE.wasm...")
		return 2
	}
	if err := relay.PrecompilePlugins(context.Background(), args[2], args[3:]...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func run() error {
	// Catch the signals before anything listens: a SIGTERM that arrives as
	// soon as /readyz answers must drain, not kill.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cfg, err := relay.LoadConfig()
	if err != nil {
		return err
	}
	log := cfg.NewLogger(os.Stderr)
	cfg.Logger = log
	cfg.Version = version
	if _, err := relay.RaiseFileLimit(); err != nil {
		log.Warn("could not raise the file descriptor limit", "err", err)
	}
	log.Info("garbage collector", "gogc", setGCTarget())
	srv, err := relay.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		return fmt.Errorf("relay: listen on %s (PORT, RELAY_HOST): %w", cfg.Addr(), err)
	}
	serveErr := make(chan error, 2)
	// The timeouts bound what a plain HTTP client may hold: a request that
	// arrives slowly and a keep-alive connection left idle. A WebSocket
	// leaves them behind at the upgrade (the relay clears the deadlines).
	// net/http reads at most MaxHeaderBytes (plus 4 KB of slack) of
	// header fields and answers 431 beyond; the relay then applies
	// RELAY_MAX_HEADER_BYTES exactly. Its own errors go to the JSON log.
	// The headers get the shorter of their own timeout and the whole
	// request's: net/http would otherwise give them ReadHeaderTimeout
	// even when ReadTimeout is shorter.
	httpLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	headerTimeout := min(cfg.HTTPHeaderTimeout, cfg.HTTPReadTimeout)
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: headerTimeout,
		ReadTimeout: cfg.HTTPReadTimeout, IdleTimeout: cfg.HTTPIdleTimeout,
		MaxHeaderBytes: cfg.MaxHeaderBytes, ErrorLog: httpLog}
	go func() { serveErr <- hs.Serve(srv.GuardListener(ln)) }()
	var ops *http.Server
	if cfg.MetricsAddr != "" {
		oln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("relay: listen on RELAY_METRICS_ADDR=%s: %w", cfg.MetricsAddr, err)
		}
		ops = &http.Server{Handler: srv.OpsHandler(), ReadHeaderTimeout: headerTimeout,
			ReadTimeout: cfg.HTTPReadTimeout, IdleTimeout: cfg.HTTPIdleTimeout,
			MaxHeaderBytes: cfg.MaxHeaderBytes, ErrorLog: httpLog}
		go func() { serveErr <- ops.Serve(srv.GuardListener(oln)) }()
		log.Info("serving metrics and health", "addr", oln.Addr().String())
	}
	log.Info("listening", "addr", ln.Addr().String(), "version", version)

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
	// the listeners and wait for plain HTTP requests.
	drainErr := srv.Shutdown(sctx)
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("relay: http shutdown: %w", err)
	}
	if ops != nil {
		ops.Shutdown(sctx)
	}
	if drainErr != nil {
		log.Warn("shutdown deadline reached; remaining clients were cut off", "err", drainErr)
	}
	log.Info("stopped")
	return nil
}
