package main_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/relay-project/relay/relay"
)

var relayBin string

// TestMain compiles this command once for every test.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "relay-cmd")
	if err != nil {
		panic(err)
	}
	relayBin = filepath.Join(dir, "relay")
	if out, err := exec.Command("go", "build", "-ldflags", "-X main.version=v0.0.0-test", "-o", relayBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildRelay(*testing.T) string { return relayBin }

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestRunDrainExit(t *testing.T) {
	bin := buildRelay(t)
	port := freePort(t)
	cmd := exec.Command(bin)
	// Only PORT: everything else is the default, as in the quick start.
	opsPort := freePort(t)
	env := []string{fmt.Sprintf("PORT=%d", port), "RELAY_HOST=127.0.0.1"}
	cmd.Env = append(env, fmt.Sprintf("RELAY_METRICS_ADDR=127.0.0.1:%d", opsPort))
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready: %v\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The shell-less health check the image uses.
	hc := exec.Command(bin, "healthcheck")
	hc.Env = append(env, fmt.Sprintf("RELAY_METRICS_ADDR=127.0.0.1:%d", opsPort))
	if out, err := hc.CombinedOutput(); err != nil {
		t.Fatalf("relay healthcheck: %v %s", err, out)
	}
	// Metrics live on the separate address only.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", opsPort))
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(body.String(), `relay_build_info{goversion=`) || !strings.Contains(body.String(), `version="v0.0.0-test"`) {
		t.Fatalf("no build info in metrics:\n%.2000s", body.String())
	}
	if resp, err := http.Get(base + "/metrics"); err != nil || resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("/metrics on the public port: %v %v", resp, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/drc/", port), nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.Write(ctx, websocket.MessageText, []byte(`{"cmd":"JOIN","channel":"c","protocol":"p"}`))
	if _, data, err := ws.Read(ctx); err != nil || !strings.Contains(string(data), `"cmd":"JOINED"`) {
		t.Fatalf("join as a loopback authority: %s %v", data, err)
	}

	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	_, _, err = ws.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusServiceRestart {
		t.Fatalf("client closed with %v, want 1012", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, logs.String())
	}
	if d := time.Since(start); d > relay.DefaultConfig().ShutdownTimeout {
		t.Fatalf("exit took %v", d)
	}
	if !strings.Contains(logs.String(), `"msg":"listening"`) {
		t.Fatalf("no JSON start log:\n%s", logs.String())
	}
}

func TestHealthcheckFailsWithoutRelay(t *testing.T) {
	hc := exec.Command(buildRelay(t), "healthcheck")
	hc.Env = []string{fmt.Sprintf("PORT=%d", freePort(t))}
	if err := hc.Run(); err == nil {
		t.Fatal("healthcheck passed with no relay running")
	}
	out, err := exec.Command(buildRelay(t), "-version").Output()
	if err != nil || strings.TrimSpace(string(out)) != "relay v0.0.0-test" {
		t.Fatalf("-version: %q %v", out, err)
	}
}

func TestBadEnvironmentStopsStartup(t *testing.T) {
	bin := buildRelay(t)
	cmd := exec.Command(bin)
	cmd.Env = []string{"RELAY_WRITE_TIMEOUT=fast"}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatal("started with a bad value")
	}
	if !strings.Contains(string(out), `RELAY_WRITE_TIMEOUT="fast": want a duration`) {
		t.Fatalf("message does not name the variable:\n%s", out)
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	bin := buildRelay(t)
	out, _ := exec.Command(bin, "-h").CombinedOutput()
	for _, v := range relay.EnvVars() {
		if !strings.Contains(string(out), v.Name) {
			t.Errorf("-h does not list %s", v.Name)
		}
	}
}
