// Package demorelay gives the examples a relay: the one named by
// RELAY_URL, or, when that is empty, a relay started in-process on a free
// loopback port so that each example runs with one command.
package demorelay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/relay-project/relay/relay"
)

// Relay is a relay the example talks to.
type Relay struct {
	// WS is its WebSocket URL, ws://host:port/.
	WS string
	// HTTP is the same origin over HTTP, for loading /sdk/relay.js.
	HTTP string
	srv  *relay.Server
	hs   *http.Server
}

// Start returns the relay at url, or starts one on 127.0.0.1 when url is
// empty. logs receives the embedded relay's logs (nil discards them).
func Start(url string, logs io.Writer) (*Relay, error) {
	if url != "" {
		httpURL := strings.Replace(strings.Replace(url, "wss://", "https://", 1), "ws://", "http://", 1)
		return &Relay{WS: url, HTTP: strings.TrimSuffix(httpURL, "/")}, nil
	}
	cfg := relay.DefaultConfig()
	if logs == nil {
		logs = io.Discard
	}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	srv, err := relay.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("demorelay: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demorelay: %w", err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	addr := ln.Addr().String()
	return &Relay{WS: "ws://" + addr + "/", HTTP: "http://" + addr, srv: srv, hs: hs}, nil
}

// Close shuts an embedded relay down (clients get close code 1012); it does
// nothing for an external one.
func (r *Relay) Close(ctx context.Context) error {
	if r.srv == nil {
		return nil
	}
	err := r.srv.Shutdown(ctx)
	if herr := r.hs.Shutdown(ctx); herr != nil && !errors.Is(herr, http.ErrServerClosed) {
		err = errors.Join(err, herr)
	}
	return err
}
