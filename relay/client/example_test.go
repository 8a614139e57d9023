package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/client"
)

// A backend announces a result over HTTP before the browser has joined;
// the browser still gets it, replayed right after joining.
func Example() {
	cfg := relay.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, _ := relay.New(cfg)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer srv.Shutdown(context.Background())
	wsURL := "ws" + strings.TrimPrefix(ts.URL, "http")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// The backend (an authority: loopback by default) mints a token and
	// publishes, never holding a WebSocket.
	api, _ := client.NewAPI(ts.URL, nil)
	tok, err := api.CreateToken(ctx, client.TokenRequest{Channel: "report-1", Protocol: "jobs"})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, _ := api.Publish(ctx, client.PublishRequest{
		Channel: "report-1", Protocol: "jobs", Cmd: "ready",
		Fields: map[string]any{"url": "/reports/1"}, Retain: 600,
	})
	fmt.Println("delivered:", res.Delivered, "retained:", res.Retained)

	// The browser's side, joining late with the token.
	c, _ := client.Dial(ctx, wsURL, nil)
	defer c.Close()
	ch, err := c.Join(ctx, "report-1", "jobs", &client.JoinOptions{Token: tok.Token, NoIPAuth: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	m, _ := c.WaitMessage(ctx, ch.Number, "ready")
	var url string
	m.Field("url", &url)
	fmt.Println(m.Cmd, url, "replayed:", m.Replayed)
	// Output:
	// delivered: 0 retained: true
	// ready /reports/1 replayed: true
}
