package main_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestGCTarget: the relay runs its collector at GOGC=50 unless GOGC is set
// (then the environment's value stands, Go's own default included), and
// says so where an operator looks: the go_gc_gogc_percent gauge and the
// start-up log.
func TestGCTarget(t *testing.T) {
	for _, tt := range []struct {
		env  []string
		want string
	}{
		{nil, "50"},
		{[]string{"GOGC="}, "50"}, // empty: unset, for the runtime too
		{[]string{"GOGC=100"}, "100"},
		{[]string{"GOGC=200"}, "200"},
	} {
		_, addr, logs := startProcess(t, tt.env...)
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := ""
		for line := range strings.SplitSeq(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, "go_gc_gogc_percent "); ok {
				got = v
			}
		}
		if got != tt.want {
			t.Errorf("env %v: go_gc_gogc_percent %q, want %s", tt.env, got, tt.want)
		}
		if !strings.Contains(logs.String(), `"msg":"garbage collector","gogc":`+tt.want+`}`) {
			t.Errorf("env %v: the start-up log does not say gogc %s:\n%s", tt.env, tt.want, logs.String())
		}
	}
}
