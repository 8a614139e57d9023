package plugin_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/relay-project/relay/relay/internal/plugin/plugintest"
)

// TestSubmodules vets and tests the plugin-sdk and plugins modules, which
// `go test ./...` at the repository root does not reach (each is its own
// module), for the host platform and for wasip1.
func TestSubmodules(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	root := plugintest.RepoRoot(t)
	for _, mod := range []string{"plugin-sdk", "plugins"} {
		t.Run(mod, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(root, mod)
			testArgs := []string{"test", "-count=1", "./..."}
			if raceEnabled {
				testArgs = append(testArgs, "-race")
			}
			for _, step := range []struct {
				args []string
				env  []string
			}{
				{[]string{"vet", "./..."}, nil},
				{[]string{"vet", "./..."}, []string{"GOOS=wasip1", "GOARCH=wasm"}},
				{testArgs, nil},
			} {
				cmd := exec.Command("go", step.args...)
				cmd.Dir = dir
				cmd.Env = append(append(os.Environ(), "GOWORK=off"), step.env...)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("go %v %v in %s: %v\n%s", step.env, step.args, mod, err, out)
				}
			}
			cmd := exec.Command("gofmt", "-l", ".")
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
				t.Errorf("gofmt -l in %s: %v\n%s", mod, err, out)
			}
		})
	}
}
