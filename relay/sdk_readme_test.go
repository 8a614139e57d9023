package relay_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/internal/plugin"
	"github.com/relay-project/relay/relay/internal/plugin/plugintest"
)

// sdkReadme is what TestSDKReadmeSetup takes from plugin-sdk/README.md.
type sdkReadme struct {
	setup   []string // the commands after the sdk-setup marker
	build   []string // the commands after the sdk-build marker
	workCmd string   // the go work alternative to the replace
	plugin  string   // the Go file of "A plugin in a few lines"
}

// readSDKReadme extracts the commands and the example plugin from
// plugin-sdk/README.md, so the test runs what a plugin author reads.
func readSDKReadme(t *testing.T) sdkReadme {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(plugintest.RepoRoot(t), "plugin-sdk", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	block := func(after, lang string) string {
		i := strings.Index(text, after)
		if i < 0 {
			t.Fatalf("plugin-sdk/README.md lacks %q", after)
		}
		rest := text[i:]
		start := strings.Index(rest, "```"+lang+"\n")
		if start < 0 {
			t.Fatalf("no ```%s block after %q", lang, after)
		}
		rest = rest[start+len("```"+lang+"\n"):]
		return rest[:strings.Index(rest, "```")]
	}
	commands := func(sh string) []string {
		// One command per line; a trailing backslash continues it.
		return strings.Split(strings.TrimSpace(strings.ReplaceAll(sh, "\\\n", "")), "\n")
	}
	r := sdkReadme{
		setup:  commands(block("<!-- sdk-setup", "sh")),
		build:  commands(block("<!-- sdk-build -->", "sh")),
		plugin: block("## A plugin in a few lines", "go"),
	}
	m := regexp.MustCompile("`(go work init [^`]+)`").FindStringSubmatch(text)
	if m == nil {
		t.Fatal("plugin-sdk/README.md names no go work init command")
	}
	r.workCmd = m[1]
	return r
}

// TestSDKReadmeSetup follows plugin-sdk/README.md as a plugin author outside
// this repository would: in an empty directory, the documented commands
// (the clone is this checkout, linked where the README clones it), the
// README's example plugin as main.go, the documented build; then a real
// relay loads the module and a real WebSocket client sees it work. Both the
// replace and the go work way are followed.
func TestSDKReadmeSetup(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: builds a plugin")
	}
	if _, err := exec.LookPath("sh"); err != nil {
		plugintest.SkipOrFail(t, "sh is not installed; the README's commands need a shell")
	}
	doc := readSDKReadme(t)
	checkSDKPublishable(t)
	const clone = "git clone https://github.com/relay-project/relay.git"
	if doc.setup[0] != clone {
		t.Fatalf("README's setup starts with %q, want the clone %q", doc.setup[0], clone)
	}
	withWork := []string{}
	for _, c := range doc.setup[1:] {
		if strings.HasPrefix(c, "go mod edit ") {
			continue // the replace, which the workspace replaces
		}
		withWork = append(withWork, c)
		if strings.HasPrefix(c, "go mod init ") {
			withWork = append(withWork, doc.workCmd)
		}
	}
	for _, tt := range []struct {
		name     string
		commands []string
	}{
		{"replace", doc.setup[1:]},
		{"go work", withWork},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.Symlink(plugintest.RepoRoot(t), filepath.Join(dir, "relay")); err != nil {
				t.Fatal(err)
			}
			script := strings.Join(tt.commands, "\n") +
				"\ncat > main.go <<'EOF'\n" + doc.plugin + "EOF\n" +
				strings.Join(doc.build, "\n") + "\n"
			cmd := exec.Command("sh", "-ec", script)
			cmd.Dir = dir
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "GOWORK=") && !strings.HasPrefix(kv, "GOOS=") && !strings.HasPrefix(kv, "GOARCH=") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("the README's commands failed: %v\n%s\nscript:\n%s", err, out, script)
			}
			wasm := filepath.Join(dir, "my-plugin", "my-plugin.wasm")

			r := startRelay(t, func(cfg *relay.Config) {
				cfg.Plugins = []string{wasm}
				cfg.PluginCacheDir = plugin.CacheDirOff // a fresh build every run
			})
			a := authority(t, r)
			g := guest(t, r)
			tok := grant(t, a, "room", "chat", 2, `{}`, false)
			ch := join(t, a, "room", "chat", "")["channel"]
			gm := join(t, g, "room", "chat", tok)
			a.NextMap() // g JOINED
			n := fmt.Sprint(gm["channel"])
			g.Send(`{"cmd":"chat","channel":` + n + `,"to":-1,"text":"STOP SHOUTING"}`)
			expectError(t, g, int(mustInt(t, ch)), "no_shouting")
			g.Send(`{"cmd":"chat","channel":` + n + `,"to":-1,"text":"hello"}`)
			if m := a.NextMap(); m["cmd"] != "chat" || m["text"] != "hello" {
				t.Fatalf("the authority got %v, want the guest's chat", m)
			}
		})
	}
}

// checkSDKPublishable checks what plugin-sdk/README.md ("Versions") says
// makes the SDK publishable as it is: its module path is the repository's
// plus the directory, so tags plugin-sdk/vX.Y.Z version it, and its go.mod
// has no dependency or replace that a consumer would trip over.
func checkSDKPublishable(t *testing.T) {
	t.Helper()
	root := plugintest.RepoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "plugin-sdk", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if lines[0] != "module github.com/relay-project/relay/plugin-sdk" {
		t.Errorf("plugin-sdk/go.mod declares %q, want the repository path plus /plugin-sdk", lines[0])
	}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 0 && f[0] != "go" {
			t.Errorf("plugin-sdk/go.mod has %q: the SDK must stay without dependencies, replaces or toolchain lines", l)
		}
	}
}
