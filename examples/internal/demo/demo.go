// Package demo holds what the browser examples share: a relay (the one
// named by RELAY_URL, or one started in-process on a free loopback port so
// that each example runs with one command), the page handler that tells a
// page where that relay is, and the HTTP serving loop.
package demo

import (
	"context"
	"fmt"
	"html/template"
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

// StartRelay returns the relay at url, or starts one on 127.0.0.1 when url
// is empty. logs receives the embedded relay's logs (nil discards them).
func StartRelay(url string, logs io.Writer) (*Relay, error) {
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
		return nil, fmt.Errorf("demo: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
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
	shutdown(r.hs)
	return err
}

// Page returns a handler that renders page with {{.RelayWS}} and
// {{.RelayHTTP}} set to r's URLs.
func (r *Relay) Page(page *template.Template) http.Handler {
	data := map[string]string{"RelayWS": r.WS, "RelayHTTP": r.HTTP}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		page.Execute(w, data)
	})
}

// Serve serves h on addr until ctx ends, calling ready with the page URL
// once it listens, then shuts down gracefully.
func Serve(ctx context.Context, addr string, h http.Handler, ready func(url string)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s (ADDR): %w", addr, err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	if ready != nil {
		ready("http://" + ln.Addr().String() + "/")
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdown(hs)
	return nil
}

// shutdown stops hs, waiting briefly for requests in flight. Browsers open
// spare connections that never carry a request, and http.Server.Shutdown
// waits 5 s for those; they are closed instead.
func shutdown(hs *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil {
		hs.Close()
	}
}
