// Command browser-chat is a chat page on the relay: a tiny backend serves
// the page and hands each visitor a send-to-any grant token; the page talks
// to the relay directly with the relay-served browser SDK.
//
//	go run ./examples/browser-chat
//
// then open http://127.0.0.1:8080/ in two browser tabs. See README.md.
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/relay-project/relay/examples/internal/demo"
	"github.com/relay-project/relay/relay/client"
)

//go:embed index.html
var indexHTML string

var page = template.Must(template.New("index").Parse(indexHTML))

// protocol is the DRC protocol name of the chat channels.
const protocol = "chat"

// options configures run.
type options struct {
	addr           string           // page server address
	relayURL       string           // external relay; "" starts one in-process
	authorityToken string           // static authority token for an external relay
	ready          func(url string) // called with the page URL once serving
	logf           func(string, ...any)
}

func main() {
	o := options{
		addr:           envOr("ADDR", "127.0.0.1:8080"),
		relayURL:       os.Getenv("RELAY_URL"),
		authorityToken: os.Getenv("RELAY_AUTHORITY_TOKEN"),
		ready:          func(url string) { log.Printf("chat: open %s in two browser tabs", url) },
		logf:           log.Printf,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		log.Fatal(err)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// run serves the chat until ctx ends.
func run(ctx context.Context, o options) error {
	rl, err := demo.StartRelay(o.relayURL, nil)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rl.Close(sctx)
	}()
	auth, err := client.Dial(ctx, rl.WS, nil)
	if err != nil {
		return err
	}
	defer auth.Close()

	mux := http.NewServeMux()
	mux.Handle("GET /{$}", rl.Page(page))
	demo.HandleFavicon(mux)
	// POST /token?room=R&name=N: a send-to-any token for room R, valid 30 s
	// for its first JOIN. A real backend would check the visitor's session
	// here; the name travels in the token's extra, so every member sees it.
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		room, name := r.URL.Query().Get("room"), r.URL.Query().Get("name")
		if room == "" || len(room) > 64 || name == "" || len(name) > 64 {
			http.Error(w, "room and name are required (at most 64 bytes)", http.StatusBadRequest)
			return
		}
		g, err := auth.CreateToken(r.Context(), room, protocol, &client.TokenOptions{
			AuthToken: o.authorityToken, ClientMode: client.SendToAny, Extra: map[string]any{"name": name},
		})
		if err != nil {
			o.logf("chat: grant: %v", err)
			http.Error(w, "could not get a token from the relay", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(map[string]string{"token": g.Token})
	})

	if err := demo.Serve(ctx, o.addr, mux, o.ready); err != nil {
		return fmt.Errorf("chat: %w", err)
	}
	return nil
}
