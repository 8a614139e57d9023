// Command relay-bench is the relay's load generator. It drives any server
// speaking the DRC protocol over real WebSockets on loopback, and can run the
// same scenario against a built-in "limit" server (pre-encoded frames, no
// relay logic) to show the ceiling of the machine.
//
// Usage:
//
//	relay-bench [flags] fanout|idle|joinrate|hold
//	relay-bench limit-serve [-listen 127.0.0.1:0]
//	relay-bench summary results.jsonl...   (medians per scenario and target)
//
// Every run is bounded in clients and time and stops by itself. Results go to
// stdout as one JSON object per line and to stderr as a table. See
// cmd/relay-bench/README.md.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
)

// Bounds every run respects, whatever the flags say.
const (
	maxClients  = 200_000
	maxDuration = 10 * time.Minute
)

// result is one run, printed as one JSON line.
type result struct {
	Time     string `json:"time"`
	Scenario string `json:"scenario"`
	Target   string `json:"target"`
	Label    string `json:"label,omitempty"`
	Cores    int    `json:"cores"`

	N         int     `json:"n,omitempty"`
	K         int     `json:"k,omitempty"`
	Size      int     `json:"size,omitempty"`
	Rate      float64 `json:"rate,omitempty"`
	Window    int     `json:"window,omitempty"`
	DurationS float64 `json:"duration_s"`

	Published      int64    `json:"published,omitempty"`
	PublishedPerS  float64  `json:"published_per_s,omitempty"`
	Expected       int64    `json:"expected,omitempty"`
	Delivered      int64    `json:"delivered,omitempty"`
	DeliveriesPerS float64  `json:"deliveries_per_s,omitempty"`
	Loss           int64    `json:"loss"`
	Reorder        int64    `json:"reorder"`
	Latency        *latency `json:"latency_us,omitempty"`
	// DeliveriesPerWrite is messages delivered per server write system call.
	DeliveriesPerWrite float64 `json:"deliveries_per_write,omitempty"`

	JoinsPerS float64 `json:"joins_per_s,omitempty"`
	Held      int     `json:"held,omitempty"`
	Survived  int     `json:"survived,omitempty"`

	ServerPID    int     `json:"server_pid,omitempty"`
	ServerCPUPct float64 `json:"server_cpu_pct,omitempty"`
	// ServerCPUPerOpUS is server CPU time per delivery (fanout) or per join
	// (joinrate), in microseconds: steadier than rates on a shared machine.
	ServerCPUPerOpUS float64 `json:"server_cpu_us_per_op,omitempty"`
	ServerRSSKB      int64   `json:"server_rss_kb,omitempty"`
	ServerHWMKB      int64   `json:"server_hwm_kb,omitempty"`
	RSSGrowthKB      int64   `json:"server_rss_growth_kb,omitempty"`
	RSSPerConnKB     float64 `json:"server_rss_per_conn_kb,omitempty"`
	ClientCPUPct     float64 `json:"client_cpu_pct,omitempty"`
	// MachineCPUPct is every CPU's busy time over the run, in percent of one
	// core, softirq included: minus server and client, what others used.
	MachineCPUPct float64 `json:"machine_cpu_pct,omitempty"`

	// Cluster mode (-instances): how many relay instances, and the NATS
	// messages the instances sent (in) and received (out) per operation
	// (per broadcast for fanout, per join for joinrate), and NATS's CPU.
	Instances      int                 `json:"instances,omitempty"`
	NATSInPerOp    float64             `json:"nats_in_per_op,omitempty"`
	NATSOutPerOp   float64             `json:"nats_out_per_op,omitempty"`
	NATSCPUPerOpUS float64             `json:"nats_cpu_us_per_op,omitempty"`
	JoinCost       map[string]joinCost `json:"join_cost,omitempty"`

	LimitFraction float64 `json:"limit_fraction,omitempty"`
	Notes         string  `json:"notes,omitempty"`
	Error         string  `json:"error,omitempty"`
}

func (r *result) fill(tgt target, start time.Time, elapsed time.Duration) {
	r.Time = start.UTC().Format(time.RFC3339)
	r.DurationS = float64(elapsed.Milliseconds()) / 1000
	r.ServerPID = tgt.pid
	if tgt.pid != 0 && r.ServerRSSKB == 0 {
		if rss, hwm, err := procMem(tgt.pid); err == nil {
			r.ServerRSSKB, r.ServerHWMKB = rss, hwm
		}
	}
}

// natsPerOp records the NATS messages and CPU since n0 and cpu0 per op.
func (r *result) natsPerOp(tgt target, n0 natsCounts, cpu0 time.Duration, ops int64) {
	r.Instances = tgt.instances()
	if tgt.nats == nil || ops <= 0 {
		return
	}
	n1, cpu1 := tgt.natsNow()
	d := n1.sub(n0)
	r.NATSInPerOp = float64(int64(float64(d.in)/float64(ops)*1000)) / 1000
	r.NATSOutPerOp = float64(int64(float64(d.out)/float64(ops)*1000)) / 1000
	r.NATSCPUPerOpUS = perOp(cpu1-cpu0, ops)
}

func (r *result) note(s string) {
	if r.Notes != "" {
		r.Notes += "; "
	}
	r.Notes += s
}

// config is everything the flags set.
type config struct {
	scenario string
	relayURL string
	pid      string
	urlName  string
	origin   string
	peer     string
	apiKey   string
	relayBin multiFlag
	insts    []int
	inprocRl bool
	relayEnv []string
	plugin   string
	pluginEv string
	limit    bool
	inproc   bool
	label    string
	cpuprof  string
	repeat   int
	timeout  time.Duration
	fan      fanoutOptions
	conn     connOptions
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func main() { os.Exit(realMain()) }

// realMain runs the command and returns the exit code, so deferred clean-up
// (profile, child servers) runs before exit.
func realMain() int {
	if len(os.Args) > 1 && os.Args[1] == "limit-serve" {
		if err := limitServe(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "relay-bench:", err)
			return 1
		}
		return 0
	}
	if len(os.Args) > 1 && os.Args[1] == "nats-serve" {
		if err := natsServe(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "relay-bench:", err)
			return 1
		}
		return 0
	}
	if len(os.Args) > 1 && os.Args[1] == "summary" {
		if err := summarize(os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "relay-bench:", err)
			return 1
		}
		return 0
	}
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay-bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	if cfg.cpuprof != "" {
		f, err := os.Create(cfg.cpuprof)
		if err != nil {
			fmt.Fprintln(os.Stderr, "relay-bench:", err)
			return 2
		}
		_ = pprof.StartCPUProfile(f)
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	results, err := run(ctx, cfg, os.Stderr)
	emit(os.Stdout, os.Stderr, results)
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay-bench:", err)
		return 1
	}
	return 0
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("relay-bench", flag.ContinueOnError)
	c := &config{}
	var env multiFlag
	var insts string
	fs.StringVar(&c.relayURL, "url", "", "relay WebSocket URL on loopback, e.g. ws://127.0.0.1:7328/; several comma-separated: instances of one cluster, members spread over them (empty: do not run against a relay)")
	fs.StringVar(&c.pid, "pid", "", "relay process id, for CPU and RSS from /proc (comma-separated, one per -url)")
	fs.StringVar(&c.urlName, "name", "relay", "name of the -url target in the results (e.g. php-drc, centrifugo)")
	fs.StringVar(&c.origin, "origin", "", "Origin header sent on every handshake to the -url target (the PHP DRC server refuses handshakes without one); empty: none")
	fs.StringVar(&c.peer, "peer", "drc", "protocol the -url target speaks: drc (the relay, the PHP DRC server) or centrifugo (idle only: connect + subscribe in Centrifugo's JSON protocol, final publish through its HTTP API)")
	fs.StringVar(&c.apiKey, "api-key", "", "-peer centrifugo: X-API-Key of its HTTP API (empty: the API is configured insecure)")
	fs.Var(&c.relayBin, "relay-bin", "start this relay binary on a free loopback port for the run (instead of -url); repeatable as NAME=PATH to compare binaries side by side (the last is the one under test: -instances and -plugin run it)")
	fs.StringVar(&insts, "instances", "", "with -relay-bin: also run against clusters of these sizes (comma-separated, e.g. 1,3): that many instances of the last -relay-bin on one child nats-server, members spread over them")
	fs.BoolVar(&c.inprocRl, "relay-inproc", false, "also run against a relay inside this process (for -cpuprofile of both sides; no server CPU/RSS)")
	fs.Var(&env, "relay-env", "KEY=VALUE added to the started relay's environment (repeatable)")
	fs.StringVar(&c.plugin, "plugin", "", "with -relay-bin: also run every scenario against a relay started with this plugin (.wasm)")
	fs.StringVar(&c.pluginEv, "plugin-env", "RELAY_PLUGINS", "environment variable through which -plugin is configured")
	fs.BoolVar(&c.limit, "limit", true, "also run the scenario against the built-in limit server")
	fs.BoolVar(&c.inproc, "limit-inproc", false, "run the limit server inside this process instead of a child process")
	fs.StringVar(&c.conn.HeapProf, "memprofile", "", "idle: write the heap profile of this process once all are joined (use with -relay-inproc)")
	fs.StringVar(&c.cpuprof, "cpuprofile", "", "write the generator's CPU profile to this file")
	fs.StringVar(&c.label, "label", "", "free text recorded in every JSON line")
	fs.IntVar(&c.repeat, "repeat", 1, "runs per target (interleaved: relay, limit, relay, limit...)")
	fs.DurationVar(&c.timeout, "timeout", 0, "hard stop for the whole invocation (default: computed from the runs, at most 30m)")
	fs.IntVar(&c.fan.N, "n", 100, "fanout: subscribers")
	fs.IntVar(&c.fan.Size, "size", 200, "fanout: delivered message size in bytes")
	fs.DurationVar(&c.fan.Duration, "d", 5*time.Second, "fanout: publishing time")
	fs.Float64Var(&c.fan.Rate, "rate", 0, "fanout: messages/s (0 = throughput: as fast as the window allows)")
	fs.IntVar(&c.fan.Window, "window", 256, "fanout throughput: broadcasts in flight")
	fs.IntVar(&c.fan.Batch, "batch", 16, "fanout: max broadcasts per publisher write")
	fs.IntVar(&c.conn.K, "k", 1000, "idle/joinrate/hold: connections")
	fs.IntVar(&c.conn.Conc, "c", 64, "idle/joinrate/hold: connects in flight")
	fs.IntVar(&c.conn.Sources, "sources", 0, "idle/joinrate/hold: 127.0.0.x source addresses (0 = one per 20,000 connections)")
	fs.DurationVar(&c.conn.Hold, "hold", 60*time.Second, "hold: how long to keep the connections")
	fs.DurationVar(&c.conn.Keepalive, "keepalive", 20*time.Second, "hold: client ping interval per connection (0 = none)")
	fs.DurationVar(&c.conn.Settle, "settle", 2*time.Second, "idle: wait before reading RSS")
	fs.BoolVar(&c.conn.PreMint, "premint", true, "joinrate: mint every grant token before timing (k must be joinable within 30 s)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: relay-bench [flags] fanout|idle|joinrate|hold|joincost\n       relay-bench limit-serve [-listen 127.0.0.1:0]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	c.relayEnv = env
	if fs.NArg() != 1 {
		fs.Usage()
		return nil, errors.New("exactly one scenario expected")
	}
	c.scenario = fs.Arg(0)
	switch c.scenario {
	case "fanout", "idle", "joinrate", "hold", "joincost":
	default:
		return nil, fmt.Errorf("unknown scenario %q", c.scenario)
	}
	if c.relayURL != "" && len(c.relayBin) > 0 {
		return nil, errors.New("-url and -relay-bin are exclusive")
	}
	switch c.peer {
	case "drc":
	case "centrifugo":
		if c.relayURL == "" || c.scenario != "idle" {
			return nil, errors.New("-peer centrifugo needs -url and runs the idle scenario only")
		}
	default:
		return nil, fmt.Errorf("-peer %q: want drc or centrifugo", c.peer)
	}
	if c.plugin != "" && len(c.relayBin) == 0 {
		return nil, errors.New("-plugin needs -relay-bin (the tool starts the relay twice: without and with the plugin)")
	}
	for _, f := range strings.FieldsFunc(insts, func(r rune) bool { return r == ',' }) {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 16 {
			return nil, fmt.Errorf("-instances: %q is not a cluster size in 1..16", f)
		}
		c.insts = append(c.insts, n)
	}
	if len(c.insts) > 0 && len(c.relayBin) == 0 {
		return nil, errors.New("-instances needs -relay-bin")
	}
	if c.relayURL == "" && len(c.relayBin) == 0 && !c.inprocRl && !c.limit {
		return nil, errors.New("nothing to run: give -url or -relay-bin, or leave -limit on")
	}
	if c.fan.N < 1 || c.fan.N > maxClients || c.conn.K < 1 || c.conn.K > maxClients {
		return nil, fmt.Errorf("-n and -k must be in 1..%d", maxClients)
	}
	if c.fan.Duration > maxDuration || c.conn.Hold > maxDuration {
		return nil, fmt.Errorf("-d and -hold must be at most %s", maxDuration)
	}
	if c.repeat < 1 || c.repeat > 20 {
		return nil, errors.New("-repeat must be in 1..20")
	}
	if c.timeout == 0 {
		per := c.fan.Duration + 30*time.Second
		if c.scenario == "hold" {
			per = c.conn.Hold + 2*time.Minute
		}
		if c.scenario == "idle" || c.scenario == "joinrate" || c.scenario == "joincost" {
			per = 2 * time.Minute
		}
		c.timeout = min(time.Duration(c.repeat*3)*per, 30*time.Minute)
	}
	if c.timeout > 30*time.Minute {
		return nil, errors.New("-timeout must be at most 30m")
	}
	return c, nil
}

// loopbackTarget checks that u is a ws:// URL on a loopback address.
func loopbackTarget(name, u string, pid int) (target, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return target{}, fmt.Errorf("bad -url: %w", err)
	}
	if pu.Scheme != "ws" {
		return target{}, fmt.Errorf("-url must be ws://, got %q", pu.Scheme)
	}
	host, port := pu.Hostname(), pu.Port()
	if port == "" {
		port = "80"
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return target{}, fmt.Errorf("resolve %q: %v", host, err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return target{}, fmt.Errorf("refusing %s: %s is not a loopback address", u, ip)
		}
	}
	path := pu.EscapedPath()
	if path == "" {
		path = "/"
	}
	return target{name: name, addr: net.JoinHostPort(ips[0].String(), port), path: path, pid: pid}, nil
}

// urlTargets is the target of -url: one relay, or the instances of one
// cluster (comma-separated), the first taking the publisher.
func urlTargets(urls, pids string) (target, error) {
	us := strings.Split(urls, ",")
	ps := strings.Split(pids, ",")
	var ts []target
	for i, u := range us {
		pid := 0
		if i < len(ps) && ps[i] != "" {
			var err error
			if pid, err = strconv.Atoi(strings.TrimSpace(ps[i])); err != nil {
				return target{}, fmt.Errorf("bad -pid %q", ps[i])
			}
		}
		t, err := loopbackTarget("relay", strings.TrimSpace(u), pid)
		if err != nil {
			return target{}, err
		}
		ts = append(ts, t)
	}
	t := ts[0]
	if len(ts) > 1 {
		t.name, t.peers = fmt.Sprintf("relay-x%d", len(ts)), ts[1:]
	}
	return t, nil
}

// server is one target plus how to stop it.
type server struct {
	tgt  target
	stop func()
}

// startTargets brings up every server the configuration names.
func startTargets(ctx context.Context, c *config, log io.Writer) ([]server, error) {
	var ss []server
	fail := func(err error) ([]server, error) {
		for _, s := range ss {
			s.stop()
		}
		return nil, err
	}
	if c.relayURL != "" {
		t, err := urlTargets(c.relayURL, c.pid)
		if err != nil {
			return fail(err)
		}
		if len(t.peers) == 0 {
			t.name = c.urlName
		}
		t.origin, t.proto, t.apiKey = c.origin, c.peer, c.apiKey
		for i := range t.peers {
			t.peers[i].origin = c.origin
		}
		ss = append(ss, server{tgt: t, stop: func() {}})
	}
	// The binary under test is the last -relay-bin (baselines come
	// first): clusters and the plugin run are made of it.
	last := ""
	for _, b := range c.relayBin {
		name, bin, ok := strings.Cut(b, "=")
		if !ok {
			name, bin = "relay", b
		}
		last = bin
		s, err := spawnRelay(ctx, name, bin, c.relayEnv, log)
		if err != nil {
			return fail(err)
		}
		ss = append(ss, s)
	}
	for _, n := range c.insts {
		s, err := spawnCluster(ctx, last, n, c.relayEnv, log)
		if err != nil {
			return fail(err)
		}
		ss = append(ss, s)
	}
	if last != "" {
		if c.plugin != "" {
			env := append(append([]string(nil), c.relayEnv...), c.pluginEv+"="+c.plugin)
			s, err := spawnRelay(ctx, "relay+plugin", last, env, log)
			if err != nil {
				return fail(err)
			}
			ss = append(ss, s)
		}
	}
	if c.inprocRl {
		s, err := startInprocRelay()
		if err != nil {
			return fail(err)
		}
		ss = append(ss, s)
	}
	if c.limit {
		s, err := startLimit(ctx, c.inproc)
		if err != nil {
			return fail(err)
		}
		ss = append(ss, s)
	}
	return ss, nil
}

// freePort asks the kernel for an unused loopback port.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), nil
}

// spawnRelay starts the relay binary on a free loopback port and waits until
// /readyz answers 200.
func spawnRelay(ctx context.Context, name, bin string, env []string, log io.Writer) (server, error) {
	port, err := freePort()
	if err != nil {
		return server{}, err
	}
	cmd := exec.Command(bin)
	cmd.Env = append(append(os.Environ(), "PORT="+port, "RELAY_HOST=127.0.0.1"), env...)
	cmd.Stdout = io.Discard
	var errOut tailBuffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		return server{}, fmt.Errorf("start %s: %w", bin, err)
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	base := "http://127.0.0.1:" + port
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return server{}, fmt.Errorf("%s did not become ready on port %s; its stderr ends: %q", bin, port, errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintf(log, "started %s (%s) pid %d on 127.0.0.1:%s\n", name, bin, cmd.Process.Pid, port)
	return server{tgt: target{name: name, addr: "127.0.0.1:" + port, path: "/", pid: cmd.Process.Pid}, stop: stop}, nil
}

// tailBuffer keeps the last 2 KB written to it (a child's stderr).
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 2048 {
		t.b = append(t.b[:0], t.b[len(t.b)-2048:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// startLimit runs the limit server as a child process (so its CPU and RSS
// are its own, like the relay's) or in this process.
func startLimit(ctx context.Context, inproc bool) (server, error) {
	if inproc {
		lctx, cancel := context.WithCancel(ctx)
		ls, err := startLimitServer(lctx, "127.0.0.1:0")
		if err != nil {
			cancel()
			return server{}, err
		}
		return server{tgt: target{name: "limit", addr: ls.Addr(), path: "/"}, stop: func() { cancel(); ls.Wait() }}, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return server{}, fmt.Errorf("find own binary: %w", err)
	}
	cmd := exec.Command(exe, "limit-serve", "-listen", "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return server{}, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return server{}, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return server{}, fmt.Errorf("start limit server: %w", err)
	}
	stop := func() {
		stdin.Close()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "LISTEN ") {
		stop()
		return server{}, fmt.Errorf("limit server did not start: %q %v", line, err)
	}
	addr := strings.TrimSpace(strings.TrimPrefix(line, "LISTEN "))
	return server{tgt: target{name: "limit", addr: addr, path: "/", pid: cmd.Process.Pid}, stop: stop}, nil
}

// limitServe is the child-process side of startLimit: it serves until stdin
// closes or it is signalled.
func limitServe(args []string) error {
	fs := flag.NewFlagSet("limit-serve", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "loopback address to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("limit-serve listens on loopback only, not %q", host)
	}
	_, _ = raiseNoFile(0, maxClients+4096)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Hour)
	defer cancel()
	ls, err := startLimitServer(ctx, *listen)
	if err != nil {
		return err
	}
	fmt.Printf("LISTEN %s\n", ls.Addr())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
	ls.Wait()
	return nil
}

// run executes the configured scenario against every target, repeat times,
// interleaving targets so that background noise hits them alike.
func run(ctx context.Context, c *config, log io.Writer) ([]*result, error) {
	ss, err := startTargets(ctx, c, log)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, s := range ss {
			s.stop()
		}
	}()
	var results []*result
	var firstErr error
	for i := 0; i < c.repeat; i++ {
		for _, s := range ss {
			if ctx.Err() != nil {
				return results, ctx.Err()
			}
			if c.scenario == "joincost" && s.tgt.nats == nil {
				continue // it counts NATS messages: cluster targets only
			}
			res := runOne(ctx, c, s.tgt)
			fmt.Fprintf(log, "%s %s run %d/%d: %s\n", c.scenario, s.tgt.name, i+1, c.repeat, brief(res))
			if res.Error != "" && firstErr == nil {
				firstErr = fmt.Errorf("%s against %s: %s", c.scenario, s.tgt.name, res.Error)
			}
			results = append(results, res)
			runtime.GC()
			time.Sleep(500 * time.Millisecond)
		}
	}
	fillFractions(results)
	return results, firstErr
}

func runOne(ctx context.Context, c *config, tgt target) *result {
	res := &result{Scenario: c.scenario, Target: tgt.name, Label: c.label, Cores: runtime.NumCPU(), Instances: tgt.instances()}
	// Label the generator's goroutines (they inherit it) so a profile of an
	// in-process relay separates: go tool pprof -tagignore side=generator.
	pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels("side", "generator")))
	defer pprof.SetGoroutineLabels(ctx)
	self0, t0, mach := selfCPU(), time.Now(), startCPUWindow()
	var err error
	switch c.scenario {
	case "fanout":
		res.N, res.Size, res.Rate = c.fan.N, c.fan.Size, c.fan.Rate
		if c.fan.Rate == 0 {
			res.Window = c.fan.Window
		}
		err = runFanout(ctx, tgt, c.fan, res)
	case "idle":
		res.K = c.conn.K
		err = runIdle(ctx, tgt, c.conn, res)
	case "joinrate":
		res.K = c.conn.K
		err = runJoinrate(ctx, tgt, c.conn, res)
	case "hold":
		res.K = c.conn.K
		err = runHold(ctx, tgt, c.conn, res)
	case "joincost":
		res.K = c.conn.K
		err = runJoinCost(ctx, tgt, c.conn, res)
	}
	if err != nil {
		res.Error = err.Error()
	}
	if res.ClientCPUPct == 0 && c.scenario != "hold" {
		// Whole run including setup; fanout measures its publishing phase.
		res.ClientCPUPct = pct(selfCPU()-self0, time.Since(t0))
	}
	if res.MachineCPUPct == 0 {
		res.MachineCPUPct = mach.busyPct(runtime.NumCPU())
	}
	if res.Time == "" {
		res.Time = time.Now().UTC().Format(time.RFC3339)
	}
	return res
}

// metric is the figure of merit a scenario is compared to the limit on.
func metric(r *result) float64 {
	switch r.Scenario {
	case "fanout":
		if r.Rate > 0 {
			return 0
		}
		return r.DeliveriesPerS
	case "joinrate":
		return r.JoinsPerS
	}
	return 0
}

// fillFractions sets limit_fraction on every non-limit run: its figure of
// merit over that of the limit run of the same round (the next limit run of
// the same scenario and size in rs, which lists runs in the order they
// ran). Pairing neighbours, not medians, cancels most of the background
// load, which drifts between rounds but hits both runs of one round alike.
func fillFractions(rs []*result) {
	for i, r := range rs {
		if r.Target == "limit" || metric(r) <= 0 {
			continue
		}
		for _, l := range rs[i+1:] {
			if l.Target != "limit" || l.Scenario != r.Scenario || l.N != r.N || l.K != r.K || l.Rate != r.Rate {
				continue
			}
			if l.Error == "" && metric(l) > 0 {
				r.LimitFraction = float64(int64(metric(r)/metric(l)*1000)) / 1000
			}
			break
		}
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func brief(r *result) string {
	if r.Error != "" {
		return "error: " + r.Error
	}
	switch r.Scenario {
	case "fanout":
		s := fmt.Sprintf("%.0f deliveries/s, loss %d", r.DeliveriesPerS, r.Loss)
		if r.Latency != nil {
			s += fmt.Sprintf(", p99 %.0fµs", r.Latency.P99)
		}
		return s
	case "idle":
		return fmt.Sprintf("%.2f KB/conn, %d/%d alive", r.RSSPerConnKB, r.Survived, r.K)
	case "joinrate":
		return fmt.Sprintf("%.0f joins/s", r.JoinsPerS)
	case "hold":
		return fmt.Sprintf("%d/%d survived", r.Survived, r.K)
	case "joincost":
		return fmt.Sprintf("%d steps", len(r.JoinCost))
	}
	return ""
}

// emit prints the JSON lines and the table.
func emit(out, tab io.Writer, rs []*result) {
	enc := json.NewEncoder(out)
	for _, r := range rs {
		_ = enc.Encode(r)
	}
	if len(rs) == 0 {
		return
	}
	w := tabwriter.NewWriter(tab, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "scenario\ttarget\tinst\tnatsIn/op\tnatsOut/op\tn/k\tsize\trate\tdeliv/s\tjoins/s\tloss\treord\tp50µs\tp99µs\tp99.9µs\tmaxµs\tdeliv/write\tsrvCPU%\tgenCPU%\tallCPU%\tRSS MB\tKB/conn\tsurvived\tof limit\t")
	for _, r := range rs {
		nk := r.N
		if nk == 0 {
			nk = r.K
		}
		p50, p99, p999, mx := "-", "-", "-", "-"
		if r.Latency != nil {
			p50, p99, p999, mx = f0(r.Latency.P50), f0(r.Latency.P99), f0(r.Latency.P999), f0(r.Latency.Max)
		}
		frac := "-"
		if r.LimitFraction > 0 {
			frac = fmt.Sprintf("%.0f%%", r.LimitFraction*100)
		}
		surv := "-"
		if r.Scenario == "idle" || r.Scenario == "hold" {
			surv = fmt.Sprintf("%d/%d", r.Survived, r.K)
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			r.Scenario, r.Target, max(r.Instances, 1), f2(r.NATSInPerOp), f2(r.NATSOutPerOp), nk, r.Size, f0(r.Rate), f0(r.DeliveriesPerS), f0(r.JoinsPerS), r.Loss, r.Reorder,
			p50, p99, p999, mx, f1(r.DeliveriesPerWrite), f1(r.ServerCPUPct), f1(r.ClientCPUPct), f1(r.MachineCPUPct), f1(float64(r.ServerRSSKB)/1024), f2(r.RSSPerConnKB), surv, frac)
		if r.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", r.Error)
		}
	}
	w.Flush()
	printJoinCost(tab, rs)
}

func f0(v float64) string {
	if v == 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func f1(v float64) string {
	if v == 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func f2(v float64) string {
	if v == 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}
