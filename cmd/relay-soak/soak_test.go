package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/relay-project/relay/relay"
)

// TestSoakShort is the soak's short mode, run by CI: a few seconds of load
// and abuse against an in-process relay with the default configuration.
func TestSoakShort(t *testing.T) {
	var out, errs bytes.Buffer
	code := realMain([]string{"-d", "3s", "-channels", "2", "-members", "10", "-churn", "4", "-slow", "2", "-attackers", "4"}, &out, &errs)
	if code != 0 {
		t.Fatalf("soak failed (exit %d):\n%s", code, errs.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report %q: %v", out.String(), err)
	}
	// The run really did what it claims: messages flowed to every member,
	// churn and attacks happened, and the relay refused the attacks.
	if rep.Members != 20 || rep.Published == 0 || rep.Received != rep.Published*10 {
		t.Fatalf("published %d, received %d by %d members: want every message at every member", rep.Published, rep.Received, rep.Members)
	}
	if rep.Churned == 0 || rep.Attacks < int64(len(attacks)) || len(rep.Refusals) == 0 || rep.Closes["1009 message too big"] == 0 || rep.Refusals["rate_limited"] == 0 {
		t.Fatalf("no real load: %s", out.String())
	}
}

// TestSoakCatchesLoss checks that the soak fails when healthy members miss
// messages: a relay whose message limit is below the publishers' message
// size closes every publisher, so no member gets anything.
func TestSoakCatchesLoss(t *testing.T) {
	cfg := relay.DefaultConfig()
	cfg.MaxMessageBytes = 128
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	defer func() {
		srv.Shutdown(t.Context())
		hs.Close()
	}()
	var out, errs bytes.Buffer
	code := realMain([]string{"-url", "ws://" + ln.Addr().String() + "/", "-d", "1s", "-channels", "1", "-members", "3", "-churn", "0", "-slow", "0", "-attackers", "0", "-pad", "256"}, &out, &errs)
	if code != 1 || !strings.Contains(errs.String(), "FAIL: healthy member") {
		t.Fatalf("exit %d, want 1 with healthy members failing:\n%s", code, errs.String())
	}
}

func TestSoakRefusesRemoteTargets(t *testing.T) {
	var out, errs bytes.Buffer
	if code := realMain([]string{"-url", "ws://192.0.2.1:7328/"}, &out, &errs); code != 2 || !strings.Contains(errs.String(), "not on loopback") {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
}
