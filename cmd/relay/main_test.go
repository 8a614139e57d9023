package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

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
	if resp, err := http.Get(base + "/metrics"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/metrics on the public port: %v %v, want 404", resp, err)
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
	// Durations read as the variables and the text log write them.
	if !strings.Contains(logs.String(), `"msg":"shutting down","deadline":"8s"`) {
		t.Fatalf("the JSON log does not write the shutdown deadline as \"8s\":\n%s", logs.String())
	}
}

// TestMisspeltVariablesWarn: every RELAY_* variable the relay does not read
// is named once at start, with the variable it most likely meant, and so is
// a plugin configuration for a plugin that is not loaded; the relay still
// serves.
func TestMisspeltVariablesWarn(t *testing.T) {
	bin := buildRelay(t)
	port := freePort(t)
	cmd := exec.Command(bin)
	cmd.Env = []string{fmt.Sprintf("PORT=%d", port), "RELAY_HOST=127.0.0.1", "RELAY_LOG_FORMAT=text",
		"RELAY_ORIGIN=https://app.example", "RELAY_PLUGIN=/plugins/jwt-auth.wasm", "relay_token_ttl=5s",
		"RELAY_PLUGIN_CONFIG_JWT_AUTH={}", "RELAY_COMPLETELY_DIFFERENT=1"}
	var logs lockedBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "msg=listening") {
		if time.Now().After(deadline) {
			t.Fatalf("never listening:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{
		`var=RELAY_ORIGIN did_you_mean=RELAY_ORIGINS`,
		`var=RELAY_PLUGIN did_you_mean=RELAY_PLUGINS`,
		`var=relay_token_ttl did_you_mean=RELAY_TOKEN_TTL`,
		`"environment variable ignored: RELAY_PLUGIN_CONFIG_JWT_AUTH configures a plugin, but RELAY_PLUGINS names none"`,
		`var=RELAY_COMPLETELY_DIFFERENT did_you_mean=""`,
	} {
		if n := strings.Count(logs.String(), want); n != 1 {
			t.Errorf("%d log lines with %s, want 1:\n%s", n, want, logs.String())
		}
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 5 {
		t.Errorf("%d warnings, want 5:\n%s", n, logs.String())
	}
}

// lockedBuffer collects a child process's output while it runs: the
// process writes while the test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
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
		if !strings.Contains(string(out), "\n"+v.Name+" (default") {
			t.Errorf("-h does not list %s at the start of a line", v.Name)
		}
	}
	// It fits a terminal.
	for i, line := range strings.Split(string(out), "\n") {
		if n := utf8.RuneCountInString(line); n > 80 {
			t.Errorf("-h line %d is %d columns: %s", i+1, n, line)
		}
	}
}

func TestPluginsPrecompileArguments(t *testing.T) {
	bin := buildRelay(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"plugins"}, 2, "usage: relay plugins precompile -cache DIR FILE.wasm..."},
		{[]string{"plugins", "precompile", "-cache", t.TempDir()}, 2, "usage:"},
		{[]string{"plugins", "precompile", "-cache", t.TempDir(), filepath.Join(t.TempDir(), "nope.wasm")}, 1, "nope.wasm"},
	} {
		out, err := exec.Command(bin, tc.args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tc.code || !strings.Contains(string(out), tc.want) {
			t.Errorf("relay %v: %v\n%s", tc.args, err, out)
		}
	}
}
