// Package plugintest builds plugins from source for tests: Go plugins with
// the Go toolchain (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared) and the
// AssemblyScript example with its npm toolchain. Builds are cached by a hash
// of their sources, so a test suite pays for each build once per change.
package plugintest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"

	"github.com/relay-project/relay/relay/internal/plugin"
)

// RepoRoot returns the root of the relay repository (the directory holding
// the go.mod of github.com/relay-project/relay), found from the working
// directory upwards.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/relay-project/relay\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("plugintest: repository root not found")
		}
		dir = parent
	}
}

// buildLocks serializes builds of the same output within one test binary.
var buildLocks sync.Map

// BuildGo builds the Go plugin package pkg (e.g. "./jwt-auth") of the module
// in moduleDir (relative to the repository root) and returns the .wasm path.
// The result is cached under the user cache directory, keyed by the sources
// of the module, of plugin-sdk and the Go version.
func BuildGo(t testing.TB, moduleDir, pkg string) string {
	t.Helper()
	return buildGo(t, moduleDir, pkg, "c-shared")
}

// BuildGoCommand builds pkg like BuildGo but without -buildmode=c-shared:
// a WASI command module, the mistake the relay must explain at start-up.
func BuildGoCommand(t testing.TB, moduleDir, pkg string) string {
	t.Helper()
	return buildGo(t, moduleDir, pkg, "exe")
}

func buildGo(t testing.TB, moduleDir, pkg, buildmode string) string {
	t.Helper()
	root := RepoRoot(t)
	mod := filepath.Join(root, moduleDir)
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n", runtime.Version(), moduleDir, pkg)
	if buildmode != "c-shared" {
		fmt.Fprintf(h, "buildmode=%s\n", buildmode)
	}
	for _, dir := range []string{mod, filepath.Join(root, "plugin-sdk")} {
		if err := hashTree(h, dir); err != nil {
			t.Fatal(err)
		}
	}
	key := hex.EncodeToString(h.Sum(nil))[:24]
	// The file is named after the package, so the relay names the plugin
	// after it too; the directory carries the source hash.
	dir := filepath.Join(cacheDir(t), key)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, filepath.Base(pkg)+".wasm")
	unlock := lock(t, out)
	defer unlock()
	if _, err := os.Stat(out); err == nil {
		precompile(t, out)
		return out
	}
	tmp := fmt.Sprintf("%s.%d.tmp", out, os.Getpid())
	cmd := exec.Command("go", "build", "-buildmode="+buildmode, "-trimpath", "-o", tmp, pkg)
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOWORK=off", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("plugintest: building %s in %s: %v\n%s", pkg, moduleDir, err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		t.Fatal(err)
	}
	precompile(t, out)
	return out
}

// lock takes an exclusive lock on path+".lock" for this process and, with
// flock, across the test binaries that go test runs in parallel, so each
// plugin is built and compiled once.
func lock(t testing.TB, path string) (unlock func()) {
	mu, _ := buildLocks.LoadOrStore(path, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		mu.(*sync.Mutex).Unlock()
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		mu.(*sync.Mutex).Unlock()
		t.Fatal(err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
		mu.(*sync.Mutex).Unlock()
	}
}

// precompile fills the shared compilation cache (CacheDir) with the module
// at path, once: compiling under the race detector takes many seconds per
// Go module, and test binaries running in parallel would each pay it.
func precompile(t testing.TB, path string) {
	stamp := path + ".compiled"
	if _, err := os.Stat(stamp); err == nil {
		return
	}
	if err := plugin.Precompile(context.Background(), path, CacheDir(t)); err != nil {
		t.Fatalf("plugintest: %v", err)
	}
	if err := os.WriteFile(stamp, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func cacheDir(t testing.TB) string {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "relay-test-plugins")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// hashTree hashes the names and contents of the Go, go.mod, TypeScript and
// JSON files under dir, skipping node_modules.
func hashTree(h interface{ Write([]byte) (int, error) }, dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "node_modules" || d.Name() == "build" {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".mod", ".ts", ".json", ".sum":
		default:
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		_, err = h.Write(b)
		return err
	})
}

// Strict reports whether RELAY_TEST_STRICT=1, in which case a missing tool
// fails a test instead of skipping it.
func Strict() bool { return os.Getenv("RELAY_TEST_STRICT") == "1" }

// SkipOrFail skips t naming the missing tool, or fails it in strict mode.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if Strict() {
		t.Fatalf(format+" (RELAY_TEST_STRICT=1)", args...)
	}
	t.Skipf(format, args...)
}

// CacheDir returns a compilation cache directory shared by the test
// binaries of one user, so compiled plugins are reused across tests.
func CacheDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(cacheDir(t), "wazero")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Guest builds one of the host's test guests (relay/internal/plugin/testdata/guests).
func Guest(t testing.TB, name string) string {
	t.Helper()
	return BuildGo(t, "relay/internal/plugin/testdata/guests", "./"+name)
}

// BuildAssemblyScript builds the AssemblyScript example plugin
// (plugin-sdk/examples/assemblyscript) with its npm toolchain and returns
// the .wasm path. Without node or the installed npm package (npm ci in that
// folder) it skips the test, or fails it when RELAY_TEST_STRICT=1.
func BuildAssemblyScript(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(RepoRoot(t), "plugin-sdk", "examples", "assemblyscript")
	if _, err := exec.LookPath("node"); err != nil {
		SkipOrFail(t, "node is not installed; the AssemblyScript example needs it")
	}
	asc := filepath.Join(dir, "node_modules", "assemblyscript", "bin", "asc.js")
	if _, err := os.Stat(asc); err != nil {
		SkipOrFail(t, "npm package assemblyscript is not installed: run npm ci in %s", dir)
	}
	h := sha256.New()
	if err := hashTree(h, filepath.Join(dir, "assembly")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "package.json"))
	h.Write(b)
	out := filepath.Join(cacheDir(t), hex.EncodeToString(h.Sum(nil))[:24], "no-shouting.wasm")
	if _, err := os.Stat(out); err == nil {
		return out
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", out, os.Getpid())
	cmd := exec.Command("node", asc, "assembly/index.ts", "-o", tmp, "-O3", "--runtime", "stub", "--noAssert", "--use", "abort=")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("plugintest: asc: %v\n%s", err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		t.Fatal(err)
	}
	return out
}
