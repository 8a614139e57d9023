package jsclient_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/relay-project/relay/relay/jsclient"
	"github.com/relay-project/relay/relay/jsclient/browsertest"
)

// TestBrowserLoadsSDK loads the served SDK in chromium both ways a page can:
// as a classic <script> (globals) and as an ES module import.
func TestBrowserLoadsSDK(t *testing.T) {
	b := browsertest.Start(t)
	mux := http.NewServeMux()
	mux.Handle(jsclient.Path, jsclient.Handler(nil))
	mux.Handle("/", http.FileServer(http.Dir("testdata")))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Goto(ctx, srv.URL+"/load.html"); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(ctx, "window.moduleExports", 10*time.Second); err != nil {
		t.Fatalf("%v; page logs: %v", err, p.Logs(ctx))
	}
	var got struct {
		Classic struct {
			RelayClient, DRCClient, RelayError string
			DRCIsRelay                         bool
		}
		Module struct {
			RelayClient          string `json:"relayClient"`
			DRCClient            string `json:"drcClient"`
			RelayError           string `json:"relayError"`
			DefaultIsRelayClient bool   `json:"defaultIsRelayClient"`
			Version              string `json:"version"`
		}
	}
	err = p.Eval(ctx, `({
		Classic: {
			RelayClient: typeof window.RelayClient,
			DRCClient: typeof window.DRCClient,
			RelayError: typeof window.RelayError,
			DRCIsRelay: new DRCClient('ws://127.0.0.1:9/', {autoConnect: false}) instanceof RelayClient,
		},
		Module: window.moduleExports,
	})`, &got)
	if err != nil {
		t.Fatal(err)
	}
	if got.Classic.RelayClient != "function" || got.Classic.DRCClient != "function" || got.Classic.RelayError != "function" || !got.Classic.DRCIsRelay {
		t.Errorf("classic script globals: %+v", got.Classic)
	}
	if got.Module.RelayClient != "function" || got.Module.DRCClient != "function" || got.Module.RelayError != "function" || !got.Module.DefaultIsRelayClient || got.Module.Version == "" {
		t.Errorf("ES module exports: %+v", got.Module)
	}
}
