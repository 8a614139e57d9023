// Command job-progress shows live progress of a server-side job in a
// browser: the page asks the backend to build a report, joins the job's
// channel on the relay with a receive-only token, and the backend publishes
// progress and finally "your report is ready" to that channel.
//
//	go run ./examples/job-progress
//
// then open http://127.0.0.1:8081/ and press "Build report". See README.md.
package main

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/relay-project/relay/examples/internal/demo"
	"github.com/relay-project/relay/relay/client"
)

//go:embed index.html
var indexHTML string

var page = template.Must(template.New("index").Parse(indexHTML))

// protocol is the DRC protocol name of the job channels.
const protocol = "report-progress"

// maxJobs bounds the jobs kept in memory; older ones are forgotten.
const maxJobs = 100

// stages are the steps of the simulated report build.
var stages = []string{"Collecting sales data", "Crunching numbers", "Drawing charts", "Writing the summary", "Rendering the PDF"}

// options configures run.
type options struct {
	addr           string        // page server address
	relayURL       string        // external relay; "" starts one in-process
	authorityToken string        // static authority token for an external relay
	step           time.Duration // time per build stage
	ready          func(url string)
	logf           func(string, ...any)
}

func main() {
	step, err := time.ParseDuration(envOr("JOB_STEP", "700ms"))
	if err != nil || step <= 0 {
		log.Fatalf("JOB_STEP=%q: want a positive duration such as 700ms", os.Getenv("JOB_STEP"))
	}
	o := options{
		addr:           envOr("ADDR", "127.0.0.1:8081"),
		relayURL:       os.Getenv("RELAY_URL"),
		authorityToken: os.Getenv("RELAY_AUTHORITY_TOKEN"),
		step:           step,
		ready:          func(url string) { log.Printf("job-progress: open %s and press Build report", url) },
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

// job is one report build.
type job struct {
	id      string
	channel int64 // the job channel's number on the relay
	started bool
	ready   time.Time // when the report was finished; zero until then
}

// backend holds the jobs and the authority connection that publishes them.
type backend struct {
	auth *client.Client
	o    options

	mu    sync.Mutex
	jobs  map[string]*job
	order []string // job ids, oldest first
	wg    sync.WaitGroup
}

// run serves the example until ctx ends.
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
	b := &backend{auth: auth, o: o, jobs: map[string]*job{}}
	jobCtx, cancelJobs := context.WithCancel(context.Background())
	defer b.wg.Wait()
	defer cancelJobs()

	mux := http.NewServeMux()
	mux.Handle("GET /{$}", rl.Page(page))
	demo.HandleFavicon(mux)
	mux.HandleFunc("POST /jobs", b.create)
	mux.HandleFunc("POST /jobs/{id}/start", func(w http.ResponseWriter, r *http.Request) { b.start(jobCtx, w, r) })
	mux.HandleFunc("GET /reports/{id}", b.report)

	if err := demo.Serve(ctx, o.addr, mux, o.ready); err != nil {
		return fmt.Errorf("job-progress: %w", err)
	}
	return nil
}

// create (POST /jobs) makes a job: the backend joins the job's channel as
// an authority and mints a receive-only token (client mode 0) for the page.
func (b *backend) create(w http.ResponseWriter, r *http.Request) {
	var raw [8]byte
	rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	name := "job-" + id
	ch, err := b.auth.Join(r.Context(), name, protocol, &client.JoinOptions{Token: b.o.authorityToken})
	if err != nil {
		b.o.logf("job-progress: join %s: %v", name, err)
		http.Error(w, "the relay refused the job channel", http.StatusBadGateway)
		return
	}
	g, err := b.auth.CreateToken(r.Context(), name, protocol, &client.TokenOptions{
		AuthToken: b.o.authorityToken, ClientMode: client.RecvOnly, Extra: map[string]any{"job": id},
	})
	if err != nil {
		b.o.logf("job-progress: grant %s: %v", name, err)
		http.Error(w, "could not get a token from the relay", http.StatusBadGateway)
		return
	}
	b.mu.Lock()
	b.jobs[id] = &job{id: id, channel: ch.Number}
	b.order = append(b.order, id)
	if len(b.order) > maxJobs {
		delete(b.jobs, b.order[0])
		b.order = b.order[1:]
	}
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]string{"id": id, "channel": name, "protocol": protocol, "token": g.Token})
}

// start (POST /jobs/{id}/start) runs the job; the page calls it once it
// has joined, so it sees every update.
func (b *backend) start(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	j := b.jobs[r.PathValue("id")]
	ok := j != nil && !j.started
	if ok {
		j.started = true
	}
	b.mu.Unlock()
	if !ok {
		http.Error(w, "no such job, or already started", http.StatusNotFound)
		return
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		if err := b.build(ctx, j); err != nil {
			b.o.logf("job-progress: job %s: %v", j.id, err)
		}
	}()
	w.WriteHeader(http.StatusAccepted)
}

// build simulates the report build, publishing each stage to the job's
// channel, then "done" with the report's URL.
func (b *backend) build(ctx context.Context, j *job) error {
	for i, stage := range stages {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(b.o.step):
		}
		percent := (i + 1) * 100 / (len(stages) + 1)
		if err := b.auth.Broadcast(ctx, j.channel, "progress", map[string]any{"percent": percent, "stage": stage}); err != nil {
			return err
		}
	}
	b.mu.Lock()
	j.ready = time.Now()
	b.mu.Unlock()
	if err := b.auth.Broadcast(ctx, j.channel, "done", map[string]any{"url": "/reports/" + j.id}); err != nil {
		return err
	}
	return b.auth.Leave(ctx, j.channel)
}

// report (GET /reports/{id}) is the finished report.
func (b *backend) report(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	j := b.jobs[r.PathValue("id")]
	var ready time.Time
	if j != nil {
		ready = j.ready
	}
	b.mu.Unlock()
	if ready.IsZero() {
		http.Error(w, "no such report yet", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Quarterly report %s\nbuilt %s\n\nRevenue is up. (This is a demo.)\n", j.id, ready.UTC().Format(time.RFC3339))
}
