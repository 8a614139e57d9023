package deploy_test

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// imageUID is the distroless "nonroot" user the image runs as.
const imageUID = 65532

// strict reports whether a missing tool must fail a test instead of
// skipping it (CI sets RELAY_TEST_STRICT=1).
func strict() bool { return os.Getenv("RELAY_TEST_STRICT") == "1" }

// needTool skips (or, under RELAY_TEST_STRICT=1, fails) when name is not on
// PATH.
func needTool(tb testing.TB, name string) {
	tb.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if strict() {
			tb.Fatalf("%s is needed (RELAY_TEST_STRICT=1): %v", name, err)
		}
		tb.Skipf("skipping: %s is not installed", name)
	}
}

// layout is a built image layout, as build-image.sh leaves it.
type layout struct {
	dir     string
	relay   string   // dir/relay
	plugins []string // dir/plugins/*.wasm
	cache   string   // dir/cache
	help    string   // what `relay -h` prints
}

// buildLayout runs build-image.sh into a fresh directory that the image's
// user can read but not write, as in the image.
func buildLayout(tb testing.TB, version string) layout {
	tb.Helper()
	needTool(tb, "go")
	needTool(tb, "sh")
	parent, err := os.MkdirTemp("", "relay-image-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		// Give write permission back so the directory can be removed when
		// this test does not run as root.
		filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
		os.RemoveAll(parent)
	})
	dir := filepath.Join(parent, "image")
	cmd := exec.Command("sh", "build-image.sh", dir)
	cmd.Env = append(os.Environ(), "VERSION="+version)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build-image.sh: %v\n%s", err, out)
	}
	// The image's files belong to root and are read-only to the relay's
	// user. Running as root, run the relay as that user; otherwise take the
	// write permission away from ourselves.
	if os.Geteuid() == 0 {
		if err := os.Chmod(parent, 0o755); err != nil {
			tb.Fatal(err)
		}
		for d := filepath.Dir(parent); d != "/"; d = filepath.Dir(d) {
			if st, err := os.Stat(d); err != nil || st.Mode().Perm()&0o001 == 0 {
				tb.Fatalf("uid %d cannot reach %s: set TMPDIR to a directory every user can enter", imageUID, d)
			}
		}
	} else {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil {
				info, _ := d.Info()
				os.Chmod(p, info.Mode().Perm()&^0o222)
			}
			return nil
		})
	}
	l := layout{dir: dir, relay: filepath.Join(dir, "relay"), cache: filepath.Join(dir, "cache")}
	l.plugins, _ = filepath.Glob(filepath.Join(dir, "plugins", "*.wasm"))
	help, _ := exec.Command(l.relay, "-h").CombinedOutput()
	l.help = string(help)
	return l
}

// has reports whether the relay's help mentions word (a subcommand or a
// variable it reads).
func (l layout) has(word string) bool { return strings.Contains(l.help, word) }

// relayCmd returns the relay of l started the way the image starts it: as
// uid/gid 65532 with no supplementary groups when running as root, from /,
// with env as its whole environment (the image sets only PATH and HOME).
func (l layout) relayCmd(args []string, env ...string) *exec.Cmd {
	cmd := exec.Command(l.relay, args...)
	cmd.Dir = "/"
	cmd.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/nonroot"}, env...)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: imageUID, Gid: imageUID, Groups: []uint32{}},
		}
	}
	return cmd
}

// pluginConfig returns a configuration the first-party plugin name
// accepts, so the relay can start with all of them.
func pluginConfig(name string) (string, bool) {
	switch name {
	case "jwt-auth":
		return `{"keys":[{"alg":"HS256","secret":"deploy-test-secret-0123456789abcdef"}]}`, true
	case "message-guard":
		return `{"protocols":{"chat":{"commands":["say"],"max_body_bytes":4096}}}`, true
	case "token-policy":
		return `{"protocols":["chat","deploy"],"max_lifetime_seconds":60}`, true
	}
	return "", false
}

// pluginEnv returns the variables that enable every plugin of l, with
// cacheDir as the compilation cache ("off" for none).
func (l layout) pluginEnv(tb testing.TB, cacheDir string) []string {
	tb.Helper()
	var paths, env []string
	for _, p := range l.plugins {
		name := strings.TrimSuffix(filepath.Base(p), ".wasm")
		cfg, ok := pluginConfig(name)
		if !ok {
			tb.Fatalf("plugin %s has no test configuration: add one to pluginConfig", name)
		}
		paths = append(paths, p)
		env = append(env, "RELAY_PLUGIN_CONFIG_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))+"="+cfg)
	}
	return append(env, "RELAY_PLUGINS="+strings.Join(paths, ","), "RELAY_PLUGIN_CACHE_DIR="+cacheDir)
}

// canLoadPlugins reports whether l ships plugins and its relay loads them.
func (l layout) canLoadPlugins() bool { return len(l.plugins) > 0 && l.has("RELAY_PLUGINS") }

// precompiled reports whether l's cache holds anything.
func (l layout) precompiled() bool {
	entries, _ := os.ReadDir(l.cache)
	return len(entries) > 0
}

// running is one relay process started from a layout.
type running struct {
	cmd  *exec.Cmd
	base string // http://127.0.0.1:PORT
	env  []string
	logs *bytes.Buffer
	done chan error
}

func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// start starts the relay on a free loopback port with env added; it does
// not wait for it.
func (l layout) start(tb testing.TB, env ...string) *running {
	tb.Helper()
	return l.startOn(tb, freePort(tb), env...)
}

// startOn starts the relay on port (loopback only) with env added.
func (l layout) startOn(tb testing.TB, port int, env ...string) *running {
	tb.Helper()
	env = append([]string{"PORT=" + strconv.Itoa(port), "RELAY_HOST=127.0.0.1"}, env...)
	r := &running{cmd: l.relayCmd(nil, env...), env: env, base: fmt.Sprintf("http://127.0.0.1:%d", port),
		logs: new(bytes.Buffer), done: make(chan error, 1)}
	r.cmd.Stdout = r.logs
	r.cmd.Stderr = r.logs
	if err := r.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	tb.Cleanup(func() {
		r.cmd.Process.Kill()
		<-r.done
	})
	return r
}

// waitReady polls /readyz until it answers 200, the process exits or the
// deadline passes, and returns how long it took from the call.
func (r *running) waitReady(tb testing.TB, deadline time.Duration) time.Duration {
	tb.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	start := time.Now()
	for {
		resp, err := client.Get(r.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start)
			}
		}
		select {
		case err := <-r.done:
			r.done <- err
			tb.Fatalf("the relay exited before it was ready: %v\n%s", err, r.logs)
		default:
		}
		if time.Since(start) > deadline {
			tb.Fatalf("/readyz not 200 after %v: %v\n%s", deadline, err, r.logs)
		}
		time.Sleep(250 * time.Microsecond)
	}
}

// stop sends SIGTERM and waits for the process to exit.
func (r *running) stop(tb testing.TB, within time.Duration) error {
	tb.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		tb.Fatal(err)
	}
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(within):
		tb.Fatalf("still running %v after SIGTERM\n%s", within, r.logs)
		return nil
	}
}

// TestImage builds the image layout with build-image.sh (the script the
// Dockerfile runs), checks what it holds, and runs it as the image does:
// as the non-root user, configured only by environment variables, from
// files it cannot write. A client joins a channel over a real WebSocket;
// SIGTERM closes it with 1012 and the relay exits cleanly.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping in -short mode: builds the relay and the plugins")
	}
	version := fmt.Sprintf("v0.0.0-deploytest.%d", time.Now().UnixNano())
	l := buildLayout(t, version)

	t.Run("static binary", func(t *testing.T) {
		f, err := elf.Open(l.relay)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("the relay needs a dynamic loader; it would not start on distroless/static")
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("the relay links %v", libs)
		}
		info, err := buildinfo.ReadFile(l.relay)
		if err != nil {
			t.Fatal(err)
		}
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
			t.Errorf("built with CGO_ENABLED=%q -trimpath=%q, want 0 and true", settings["CGO_ENABLED"], settings["-trimpath"])
		}
		if !l.has("-version") {
			t.Skip("this relay has no -version: VERSION is not checked")
		}
		out, err := l.relayCmd([]string{"-version"}).Output()
		if got := strings.TrimSpace(string(out)); err != nil || got != "relay "+version {
			t.Errorf("relay -version printed %q (%v), want %q: VERSION is not stamped into main.version", got, err, "relay "+version)
		}
	})

	t.Run("plugins", func(t *testing.T) {
		sources, _ := filepath.Glob("../../plugins/*/main.go")
		if len(sources) == 0 {
			t.Skip("no plugins/ in this tree: the image ships none")
		}
		for _, src := range sources {
			name := filepath.Base(filepath.Dir(src))
			b, err := os.ReadFile(filepath.Join(l.dir, "plugins", name+".wasm"))
			if err != nil {
				t.Errorf("plugin %s was not built: %v", name, err)
				continue
			}
			if !bytes.HasPrefix(b, []byte("\x00asm")) {
				t.Errorf("plugins/%s.wasm is not a WebAssembly module", name)
			}
		}
		switch {
		case l.has("plugins precompile") && !l.precompiled():
			t.Error("the relay can precompile plugins but the layout's cache is empty")
		case !l.has("plugins precompile"):
			t.Log("the relay has no 'plugins precompile': the image's cache is empty and plugins compile at start")
		}
		if !l.canLoadPlugins() {
			t.Skip("this relay does not load plugins (no RELAY_PLUGINS)")
		}
		// Start with every shipped plugin as the image's user. With a
		// precompiled cache, that user cannot write the cache (as on a
		// read-only root filesystem), so a plugin missing from it would be
		// compiled in memory with a warning: there must be none.
		cache := "off"
		if l.precompiled() {
			cache = l.cache
		}
		r := l.start(t, l.pluginEnv(t, cache)...)
		took := r.waitReady(t, 30*time.Second)
		t.Logf("ready with %d plugins (cache %s) in %v", len(l.plugins), cache, took)
		if err := r.stop(t, 10*time.Second); err != nil {
			t.Errorf("the relay exited with %v after SIGTERM, want 0\n%s", err, r.logs)
		}
		if strings.Contains(r.logs.String(), "plugin compilation cache cannot be written") {
			t.Errorf("a shipped plugin is missing from the image's cache:\n%s", r.logs)
		}
	})

	t.Run("run", func(t *testing.T) {
		r := l.start(t)
		r.waitReady(t, 10*time.Second)
		if os.Geteuid() == 0 {
			status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.cmd.Process.Pid))
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d", imageUID, imageUID, imageUID, imageUID)
			if !strings.Contains(string(status), want) {
				t.Errorf("the relay does not run as uid %d:\n%s", imageUID, status)
			}
		}
		for _, path := range []string{"/healthz", "/readyz"} {
			resp, err := http.Get(r.base + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s: %s", path, resp.Status)
			}
		}
		healthcheck := func() error {
			return l.relayCmd([]string{"healthcheck"}, r.env...).Run()
		}
		if l.has("healthcheck") {
			if err := healthcheck(); err != nil {
				t.Errorf("relay healthcheck on a ready relay: %v", err)
			}
		} else {
			t.Log("the relay has no 'healthcheck' subcommand yet: the Dockerfile's HEALTHCHECK needs it")
		}

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(r.base, "http")+"/", nil)
		if err != nil {
			t.Fatalf("dial: %v\n%s", err, r.logs)
		}
		defer ws.CloseNow()
		join := `{"cmd":"JOIN","channel":"deploy-check","protocol":"deploy"}`
		if err := ws.Write(ctx, websocket.MessageText, []byte(join)); err != nil {
			t.Fatal(err)
		}
		_, msg, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("no answer to JOIN: %v\n%s", err, r.logs)
		}
		var joined struct {
			Cmd         string
			Success     bool
			ChannelName string
		}
		if err := json.Unmarshal(msg, &joined); err != nil || joined.Cmd != "JOINED" || !joined.Success || joined.ChannelName != "deploy-check" {
			t.Fatalf("JOIN answered %s", msg)
		}

		// Keep reading, as a client does, so the close handshake completes.
		closed := make(chan error, 1)
		go func() {
			for {
				if _, _, err := ws.Read(ctx); err != nil {
					closed <- err
					return
				}
			}
		}()
		if err := r.stop(t, 10*time.Second); err != nil {
			t.Errorf("the relay exited with %v after SIGTERM, want 0\n%s", err, r.logs)
		}
		err = <-closed
		if got := websocket.CloseStatus(err); got != websocket.StatusServiceRestart {
			t.Errorf("the client was closed with %v (%v), want 1012 service restart", got, err)
		}
		if l.has("healthcheck") {
			if err := healthcheck(); err == nil {
				t.Error("relay healthcheck succeeded with the relay stopped")
			}
		}
	})

	var size int64
	filepath.WalkDir(l.dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			info, _ := d.Info()
			size += info.Size()
		}
		return nil
	})
	t.Logf("image layout: %d bytes (%.1f MiB), %d plugins", size, float64(size)/(1<<20), len(l.plugins))
}

// BenchmarkColdStart measures a cold start of the image layout: from exec
// to the first 200 from /readyz, as the image starts (non-root, env only).
//
//	go test ./examples/deploy -run '^$' -bench ColdStart -benchtime 20x
func BenchmarkColdStart(b *testing.B) {
	l := buildLayout(b, "bench")
	b.Run("no-plugins", func(b *testing.B) {
		var total time.Duration
		for b.Loop() {
			b.StopTimer()
			port := freePort(b)
			b.StartTimer()
			start := time.Now()
			r := l.startOn(b, port)
			r.waitReady(b, 10*time.Second)
			total += time.Since(start)
			b.StopTimer()
			// Not checked: a SIGTERM this soon after readiness may arrive
			// before cmd/relay has installed its signal handler (TestImage
			// checks the drain).
			r.stop(b, 10*time.Second)
			b.StartTimer()
		}
		b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms-to-ready")
	})
	// With every shipped plugin: compiled at start (no cache), loaded from
	// a cache the relay wrote on an earlier start (what a precompiled cache
	// holds), and from the image's own precompiled cache.
	plugins := func(b *testing.B, cacheDir string) {
		if !l.canLoadPlugins() {
			b.Skip("this relay does not load plugins (no RELAY_PLUGINS)")
		}
		env := l.pluginEnv(b, cacheDir)
		var total time.Duration
		for b.Loop() {
			b.StopTimer()
			port := freePort(b)
			b.StartTimer()
			start := time.Now()
			r := l.startOn(b, port, env...)
			r.waitReady(b, 30*time.Second)
			total += time.Since(start)
			b.StopTimer()
			r.stop(b, 10*time.Second)
			b.StartTimer()
		}
		b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms-to-ready")
	}
	b.Run("plugins-no-cache", func(b *testing.B) { plugins(b, "off") })
	b.Run("plugins-warm-cache", func(b *testing.B) {
		// Beside the layout, where the image's user can reach it.
		dir, err := os.MkdirTemp(filepath.Dir(l.dir), "warm-cache-")
		if err != nil {
			b.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if os.Geteuid() == 0 {
			if err := os.Chown(dir, imageUID, imageUID); err != nil {
				b.Fatal(err)
			}
		}
		if l.canLoadPlugins() {
			r := l.start(b, l.pluginEnv(b, dir)...)
			r.waitReady(b, 60*time.Second)
			r.stop(b, 10*time.Second)
		}
		plugins(b, dir)
	})
	b.Run("plugins-shipped-cache", func(b *testing.B) {
		if l.canLoadPlugins() && !l.precompiled() {
			b.Skip("the image's cache is empty (the relay has no 'plugins precompile')")
		}
		plugins(b, l.cache)
	})
}
