package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// plainProcessLines returns the shell lines of the README's plain-process
// recipe: the fenced block after the plain-processes marker.
func plainProcessLines(t *testing.T) []string {
	t.Helper()
	readme := string(readFile(t, "README.md"))
	_, rest, ok := strings.Cut(readme, "<!-- plain-processes")
	if !ok {
		t.Fatal("README.md has no plain-processes block")
	}
	_, rest, _ = strings.Cut(rest, "```sh\n")
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("the plain-processes block is not closed")
	}
	var lines []string
	for _, l := range strings.Split(block, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

// goModVersion returns the version go.mod requires of module mod.
func goModVersion(t *testing.T, mod string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(mod) + `\s+(v\S+)`).FindStringSubmatch(string(readFile(t, "../../go.mod")))
	if m == nil {
		t.Fatalf("go.mod does not require %s", mod)
	}
	return m[1]
}

// TestPlainProcesses runs the README's plain-process recipe line by line,
// as documented, with free loopback ports and a temporary directory in
// place of the fixed ones: a nats-server from the Go module cache and
// three relay processes on it. Members on the first and the last instance
// then see each other and a broadcast crosses instances.
func TestPlainProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds nats-server and the relay and runs four processes")
	}
	lines := plainProcessLines(t)
	if len(lines) != 5 {
		t.Fatalf("the recipe has %d lines, want a build, nats-server and three relays: %q", len(lines), lines)
	}
	wantNATS := "go run github.com/nats-io/nats-server/v2@" + goModVersion(t, "github.com/nats-io/nats-server/v2") + " "
	if !strings.HasPrefix(lines[1], wantNATS) {
		t.Errorf("the recipe runs %q, want the nats-server go.mod requires: %q...", lines[1], wantNATS)
	}

	dir := t.TempDir()
	natsPort := freePort(t)
	relayPorts := []int{freePort(t), freePort(t), freePort(t)}
	replace := strings.NewReplacer(
		"4222", strconv.Itoa(natsPort),
		"PORT=7328", "PORT="+strconv.Itoa(relayPorts[0]),
		"PORT=7329", "PORT="+strconv.Itoa(relayPorts[1]),
		"PORT=7330", "PORT="+strconv.Itoa(relayPorts[2]),
		"/tmp/relay-nats", filepath.Join(dir, "nats"),
		"-o relay", "-o "+filepath.Join(dir, "relay"),
		"./relay", filepath.Join(dir, "relay"),
	)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var logs []*bytes.Buffer
	for i, line := range lines {
		line = replace.Replace(line)
		background := strings.HasSuffix(line, "&")
		env, argv := splitCommand(strings.TrimSpace(strings.TrimSuffix(line, "&")))
		for _, e := range env {
			if k, _, _ := strings.Cut(e, "="); k == "RELAY_HOST" || k == "PORT" || k == "RELAY_NATS_URL" {
				continue
			}
			t.Errorf("line %d sets %s, which this test does not expect", i+1, e)
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		if !background {
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", line, err, out)
			}
			continue
		}
		// Its own process group: `go run` leaves nats-server as its child.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out := new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = out, out
		logs = append(logs, out)
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
			}
		})
		if i == 1 {
			// As a person would: wait for "Server is ready" (go run may
			// be compiling it first).
			waitTCP(t, natsPort, 4*time.Minute, out)
		}
	}
	for _, p := range relayPorts {
		waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/readyz", p), 20*time.Second, logs)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var conns []*websocket.Conn
	var ids []int64
	for _, p := range relayPorts {
		ws, _, err := websocket.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/", p), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		wsWrite(ctx, t, ws, map[string]any{"cmd": "JOIN", "channel": "room", "protocol": "chat"})
		j := wsReadCmd(ctx, t, ws, "JOINED")
		if len(j["clients"].(map[string]any)) != len(conns)+1 {
			t.Fatalf("joiner on :%d lists %v, want the %d members on the other instances too", p, j["clients"], len(conns))
		}
		conns = append(conns, ws)
		ids = append(ids, int64(j["id"].(float64)))
		ch := j["channel"]
		if len(conns) == 3 {
			wsWrite(ctx, t, ws, map[string]any{"cmd": "hello", "channel": ch, "to": -1, "text": "from the third"})
		}
	}
	for i, ws := range conns[:2] {
		m := wsReadCmd(ctx, t, ws, "hello")
		if int64(m["from"].(float64)) != ids[2] || m["text"] != "from the third" {
			t.Fatalf("member on instance %d got %v, want the broadcast from the member on instance 3", i+1, m)
		}
	}
}

// splitCommand splits a recipe line (no quoting) into leading VAR=VALUE
// assignments and the command.
func splitCommand(line string) (env, argv []string) {
	f := strings.Fields(line)
	for len(f) > 0 && regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`).MatchString(f[0]) {
		env, f = append(env, f[0]), f[1:]
	}
	return env, f
}

func waitTCP(t *testing.T, port int, within time.Duration, log *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %d after %s: %s", port, within, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitHTTP(t *testing.T, url string, within time.Duration, logs []*bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			var all []string
			for _, l := range logs {
				all = append(all, l.String())
			}
			t.Fatalf("%s not 200 after %s (last: %v); logs:\n%s", url, within, err, strings.Join(all, "\n---\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func wsWrite(ctx context.Context, t *testing.T, ws *websocket.Conn, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// wsReadCmd reads frames until one with cmd.
func wsReadCmd(ctx context.Context, t *testing.T, ws *websocket.Conn, cmd string) map[string]any {
	t.Helper()
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", cmd, err)
		}
		var m map[string]any
		if err := json.NewDecoder(bufio.NewReader(bytes.NewReader(b))).Decode(&m); err != nil {
			t.Fatalf("bad frame %s: %v", b, err)
		}
		if m["cmd"] == cmd {
			return m
		}
	}
}
