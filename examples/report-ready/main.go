// Command report-ready is a small backend that tells a browser when its
// report is ready, through the relay, without ever holding a WebSocket
// open itself.
//
// POST /reports starts a fake job, mints a receive-only grant token for the
// job's channel through the relay's HTTP API and answers with a page that
// joins that channel with the token. When the job ends the backend
// publishes "ready" through the HTTP API, retained for ten minutes, so a
// browser that joins late (slow network, a reload) still gets it: the race
// DRC's documentation warns about is gone.
//
// Configuration (environment):
//
//	RELAY_URL              the relay, as the browser reaches it (default ws://127.0.0.1:7328/)
//	RELAY_AUTHORITY_TOKEN  a static authority token, when this backend is not on an authority address
//	ADDR                   where this backend listens (default 127.0.0.1:8082)
//	JOB_SECONDS            how long the fake job takes (default 3)
package main

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/relay-project/relay/examples/internal/demo"
	"github.com/relay-project/relay/relay/client"
)

// protocol is the DRC protocol name of this application's channels.
const protocol = "report-ready"

// Config is the example's configuration.
type Config struct {
	RelayURL   string        // the relay's WebSocket URL, as browsers reach it
	RelayToken string        // static authority token; "" relies on the address
	Job        time.Duration // how long a fake job takes
	Retain     time.Duration // how long "ready" stays retained
	HTTPClient *http.Client  // for the relay's HTTP API; nil means the default
	// Work, when set, is the job instead of sleeping for Job (tests use it
	// to finish a job exactly when they want).
	Work func(job string)
	// Grace bounds the wait for requests in flight at shutdown; then the
	// remaining connections are closed. Default: 5 s.
	Grace time.Duration
}

func main() {
	job := 3 * time.Second
	if s := os.Getenv("JOB_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			fmt.Fprintln(os.Stderr, "report-ready: JOB_SECONDS must be a whole number of seconds")
			os.Exit(2)
		}
		job = time.Duration(n) * time.Second
	}
	cfg := Config{
		RelayURL:   envOr("RELAY_URL", "ws://127.0.0.1:7328/"),
		RelayToken: os.Getenv("RELAY_AUTHORITY_TOKEN"),
		Job:        job,
		Retain:     10 * time.Minute,
	}
	addr := envOr("ADDR", "127.0.0.1:8082")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report-ready:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	log.Info("report-ready: open this page in a browser", "url", "http://"+ln.Addr().String()+"/", "relay", cfg.RelayURL)
	if err := Run(ctx, ln, cfg, log); err != nil {
		fmt.Fprintln(os.Stderr, "report-ready:", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Run serves the example on ln until ctx ends, then waits for running jobs
// to publish.
func Run(ctx context.Context, ln net.Listener, cfg Config, log *slog.Logger) error {
	api, err := client.NewAPI(cfg.RelayURL, &client.APIOptions{Token: cfg.RelayToken, HTTPClient: cfg.HTTPClient})
	if err != nil {
		return err
	}
	app := &app{cfg: cfg, api: api, log: log, reports: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", app.home)
	mux.HandleFunc("POST /reports", app.start)
	mux.HandleFunc("GET /reports/{id}", app.report)
	demo.HandleFavicon(mux)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	grace := cfg.Grace
	if grace <= 0 {
		grace = 5 * time.Second
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err = srv.Shutdown(shutCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = srv.Close() // a browser's idle pre-connected sockets, for instance
	}
	app.jobs.Wait()
	return err
}

type app struct {
	cfg  Config
	api  *client.API
	log  *slog.Logger
	jobs sync.WaitGroup

	mu      sync.Mutex
	reports map[string]string // job id -> finished report
}

func (a *app) home(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pages.ExecuteTemplate(w, "home", nil); err != nil {
		a.log.Error("home page", "err", err)
	}
}

// PageConfig is what the job page needs to join the job's channel; the
// page carries it as JSON in <script id="job">.
type PageConfig struct {
	Job      string `json:"job"`
	Relay    string `json:"relay"`
	Channel  string `json:"channel"`
	Protocol string `json:"protocol"`
	Token    string `json:"token"`
}

// start begins a fake job and answers with the page that waits for it.
func (a *app) start(w http.ResponseWriter, r *http.Request) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	channel := "report-" + id

	// The browser may only listen (mode 0), on this job's channel only.
	tok, err := a.api.CreateToken(r.Context(), client.TokenRequest{
		Channel: channel, Protocol: protocol, ClientMode: client.RecvOnly,
		Extra: map[string]any{"job": id},
	})
	if err != nil {
		a.log.Error("minting a token failed", "err", err, "code", client.ErrorCode(err))
		http.Error(w, "the relay refused a token: "+err.Error(), http.StatusBadGateway)
		return
	}

	a.jobs.Add(1)
	go a.run(id, channel)

	cfg, _ := json.Marshal(PageConfig{Job: id, Relay: a.cfg.RelayURL, Channel: channel, Protocol: protocol, Token: tok.Token})
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := pages.ExecuteTemplate(w, "job", template.JS(cfg)); err != nil {
		a.log.Error("page", "err", err)
	}
}

// run is the fake job: wait, store a report, publish "ready" retained.
func (a *app) run(id, channel string) {
	defer a.jobs.Done()
	if a.cfg.Work != nil {
		a.cfg.Work(id)
	} else {
		time.Sleep(a.cfg.Job)
	}
	a.mu.Lock()
	a.reports[id] = fmt.Sprintf("Report %s: 42 rows, generated %s.\n", id, time.Now().UTC().Format(time.RFC3339))
	a.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := a.api.Publish(ctx, client.PublishRequest{
		Channel: channel, Protocol: protocol, Cmd: "ready",
		Fields: map[string]any{"url": "/reports/" + id},
		Retain: int(a.cfg.Retain / time.Second),
	})
	if err != nil {
		a.log.Error("publishing ready failed", "job", id, "err", err, "code", client.ErrorCode(err))
		return
	}
	a.log.Info("job done", "job", id, "delivered", res.Delivered, "retained", res.Retained)
}

func (a *app) report(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	rep, ok := a.reports[r.PathValue("id")]
	a.mu.Unlock()
	if !ok {
		http.Error(w, "no such report (yet)", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, rep)
}

// pages holds the home page ("home") and the page that waits for a job
// ("job"), which joins the job's channel with the grant token and waits
// for "ready".
//
//go:embed pages.html
var pagesHTML string

var pages = template.Must(template.New("pages").Parse(pagesHTML))
