// Command relay-soak puts a relay under mixed load and abuse for a bounded
// time and then checks that nobody healthy paid for it.
//
// Usage:
//
//	relay-soak [-url ws://127.0.0.1:PORT/] [-d 30s] [flags]
//
// Without -url it serves a relay with the default configuration inside this
// process (127.0.0.1 is its only authority address; members dial from other
// loopback addresses), which also lets it check the relay's goroutines and
// heap once the load has gone. With -url it drives that relay, which must be
// on loopback.
//
// During the run, at once:
//   - healthy members: each channel has an authority publishing numbered
//     messages at -rate, and -members receive-only members who must get
//     every message from their join on, in order, and are never closed;
//   - churn: connections that join with a grant token, talk, and leave or
//     vanish, over and over;
//   - slow consumers: members that never read;
//   - attackers: bad JSON, bad fields, forged tokens, oversized messages,
//     binary garbage, floods of requests a guest may not make.
//
// Afterwards every refusal must be a documented error code or close code,
// and (in process) the relay's goroutines and heap must be back within a
// stated bound of where they started. It prints one JSON line with the
// counts and exits 1 when any check fails.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Bounds every run respects, whatever the flags say.
const (
	maxDuration = 10 * time.Minute
	maxConns    = 5000
)

type options struct {
	url       string
	duration  time.Duration
	channels  int
	members   int // healthy members per channel
	rate      float64
	pad       int
	churners  int
	slow      int
	attackers int
	// Bounds for the in-process checks after the run.
	goroutineSlack int
	heapSlackMB    int
}

func main() { os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr)) }

func realMain(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "relay-soak:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, o)
	if rep != nil {
		b, _ := json.Marshal(rep)
		fmt.Fprintln(stdout, string(b))
		rep.print(stderr)
	}
	if err != nil {
		fmt.Fprintln(stderr, "relay-soak:", err)
		return 1
	}
	if len(rep.Failures) > 0 {
		return 1
	}
	return 0
}

func parseFlags(args []string, out io.Writer) (*options, error) {
	fs := flag.NewFlagSet("relay-soak", flag.ContinueOnError)
	fs.SetOutput(out)
	o := &options{}
	fs.StringVar(&o.url, "url", "", "relay WebSocket URL on loopback (empty: serve a relay in this process)")
	fs.DurationVar(&o.duration, "d", 30*time.Second, "how long the load runs")
	fs.IntVar(&o.channels, "channels", 4, "channels with a publisher and healthy members")
	fs.IntVar(&o.members, "members", 25, "healthy members per channel")
	fs.Float64Var(&o.rate, "rate", 50, "messages per second each publisher broadcasts")
	fs.IntVar(&o.pad, "pad", 256, "padding bytes in each published message")
	fs.IntVar(&o.churners, "churn", 8, "goroutines that join, talk and leave in a loop")
	fs.IntVar(&o.slow, "slow", 4, "members that never read")
	fs.IntVar(&o.attackers, "attackers", 8, "goroutines sending bad input in a loop")
	fs.IntVar(&o.goroutineSlack, "goroutine-slack", 20, "in process: goroutines allowed above the start after the run")
	fs.IntVar(&o.heapSlackMB, "heap-slack-mb", 32, "in process: MiB of live heap allowed above the start after the run")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.duration <= 0 || o.duration > maxDuration {
		return nil, fmt.Errorf("-d must be in (0, %s]", maxDuration)
	}
	if o.channels < 1 || o.members < 1 || o.rate <= 0 || o.pad < 0 || o.churners < 0 || o.slow < 0 || o.attackers < 0 {
		return nil, errors.New("-channels, -members and -rate must be positive; the others not negative")
	}
	if n := o.channels*(o.members+1) + o.churners + o.slow + o.attackers; n > maxConns {
		return nil, fmt.Errorf("%d connections at once is over the bound of %d", n, maxConns)
	}
	if o.url != "" {
		u, err := url.Parse(o.url)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "http") {
			return nil, fmt.Errorf("-url %q: want ws://127.0.0.1:PORT/", o.url)
		}
		host, _, err := net.SplitHostPort(u.Host)
		if err != nil {
			host = u.Host
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("-url %q is not on loopback: relay-soak only drives a relay on this machine", o.url)
		}
	}
	return o, nil
}
