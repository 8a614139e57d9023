package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// This file is cluster mode's side of the generator: a NATS server (a
// child process, so its CPU is its own), several relay instances on it
// forming one target, and the NATS message counts a run reads off it.

// natsCounts are the messages NATS received from its clients (the relay
// instances: KV requests and broker publishes) and delivered to them
// (replies, events, watch updates), summed over every client connection.
type natsCounts struct{ in, out int64 }

func (c natsCounts) sub(o natsCounts) natsCounts { return natsCounts{c.in - o.in, c.out - o.out} }

// natsStats reads the current counts; nil when the target has no NATS.
type natsStats func() (natsCounts, error)

func sumConnz(cz *natsserver.Connz) natsCounts {
	var n natsCounts
	for _, c := range cz.Conns {
		n.in += c.InMsgs
		n.out += c.OutMsgs
	}
	return n
}

// monitorStats reads the counts from a NATS server's monitoring endpoint.
func monitorStats(base string) natsStats {
	hc := &http.Client{Timeout: 5 * time.Second}
	return func() (natsCounts, error) {
		resp, err := hc.Get(base + "/connz?limit=4096")
		if err != nil {
			return natsCounts{}, fmt.Errorf("nats connz: %w", err)
		}
		defer resp.Body.Close()
		var cz natsserver.Connz
		if err := json.NewDecoder(resp.Body).Decode(&cz); err != nil {
			return natsCounts{}, fmt.Errorf("nats connz: %w", err)
		}
		return sumConnz(&cz), nil
	}
}

// startNATS runs `relay-bench nats-serve` as a child: a nats-server with
// JetStream on a free loopback port, its storage in a temporary directory.
func startNATS(ctx context.Context) (url string, pid int, stats natsStats, stop func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", 0, nil, nil, fmt.Errorf("find own binary: %w", err)
	}
	dir, err := os.MkdirTemp("", "relay-bench-nats-")
	if err != nil {
		return "", 0, nil, nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "nats-serve", "-store", dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, nil, nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", 0, nil, nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", 0, nil, nil, fmt.Errorf("start nats server: %w", err)
	}
	stop = func() {
		stdin.Close()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		os.RemoveAll(dir)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 3 || f[0] != "NATS" {
		stop()
		return "", 0, nil, nil, fmt.Errorf("nats server did not start: %q %v", line, err)
	}
	return f[1], cmd.Process.Pid, monitorStats(f[2]), stop, nil
}

// natsServe is the child side of startNATS: it prints
// "NATS <client url> <monitor url>" and serves until stdin closes or it is
// signalled.
func natsServe(args []string) error {
	fs := flag.NewFlagSet("nats-serve", flag.ContinueOnError)
	store := fs.String("store", "", "JetStream storage directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *store == "" {
		return fmt.Errorf("nats-serve: -store is required")
	}
	ns, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, HTTPHost: "127.0.0.1", HTTPPort: natsserver.RANDOM_PORT,
		JetStream: true, StoreDir: *store, NoLog: true, NoSigs: true,
	})
	if err != nil {
		return fmt.Errorf("nats-serve: %w", err)
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(20 * time.Second) {
		return fmt.Errorf("nats-serve: not ready within 20s")
	}
	fmt.Printf("NATS %s http://%s\n", ns.ClientURL(), ns.MonitorAddr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Hour)
	defer cancel()
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
	<-ctx.Done()
	return nil
}

// spawnCluster starts a NATS server and n instances of the relay binary on
// it, and returns them as one target: the publisher on the first instance,
// members spread over all of them (target.at).
func spawnCluster(ctx context.Context, bin string, n int, env []string, log io.Writer) (server, error) {
	url, natsPID, stats, stopNATS, err := startNATS(ctx)
	if err != nil {
		return server{}, err
	}
	fmt.Fprintf(log, "started nats-server pid %d on %s\n", natsPID, url)
	stops := []func(){stopNATS}
	stopAll := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	name := fmt.Sprintf("relay-nats-x%d", n)
	var insts []target
	for i := range n {
		s, err := spawnRelay(ctx, fmt.Sprintf("%s#%d", name, i), bin, append(append([]string(nil), env...), "RELAY_NATS_URL="+url), log)
		if err != nil {
			stopAll()
			return server{}, err
		}
		stops = append(stops, s.stop)
		insts = append(insts, s.tgt)
	}
	tgt := insts[0]
	tgt.name, tgt.peers, tgt.nats, tgt.natsPID = name, insts[1:], stats, natsPID
	return server{tgt: tgt, stop: stopAll}, nil
}
