package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
)

// relayTargets starts a real relay on loopback, as cmd/relay would, and
// returns it as a smoke-test target.
func relayTargets(t *testing.T) []target {
	t.Helper()
	return []target{serveRelay(t, relay.DefaultConfig())}
}

// serveRelay serves a relay for cfg (logging nothing) on a free loopback
// port until the test ends, and returns it as a target.
func serveRelay(t *testing.T, cfg relay.Config) target {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("relay shutdown: %v", err)
		}
		hs.Shutdown(ctx)
	})
	return target{name: "relay", addr: ln.Addr().String(), path: "/"}
}
