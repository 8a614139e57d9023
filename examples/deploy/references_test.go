package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCitedFilesExist: the image's build files tell a reader which test
// checks them; every repository path they cite must exist, or the pointer
// sends the reader nowhere.
func TestCitedFilesExist(t *testing.T) {
	// A repository path to a source or document file; /plugins/x.wasm is
	// a path inside the image, and NAME a placeholder.
	cited := regexp.MustCompile(`(?:^|[^/\w])((?:examples|relay|cmd|plugins|plugin-sdk)/[\w./-]*\.(?:go|sh|md|json|yaml|toml))\b`)
	for _, file := range []string{"../../Dockerfile", "build-image.sh", "README.md"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range cited.FindAllStringSubmatch(string(data), -1) {
			path := m[1]
			if strings.Contains(path, "NAME") {
				continue
			}
			if _, err := os.Stat(filepath.Join("../..", path)); err != nil {
				t.Errorf("%s cites %s, which does not exist", file, path)
			}
		}
	}
}
