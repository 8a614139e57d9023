package plugin_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relay-project/relay/relay/internal/plugin"
	"github.com/relay-project/relay/relay/internal/plugin/plugintest"
	"github.com/relay-project/relay/relay/internal/relaytest"
)

// idp is an HTTP server standing in for an identity provider's JWKS
// endpoint: its body, status, Cache-Control and delay can change while a
// host runs, and it counts requests.
type idp struct {
	*httptest.Server
	mu       sync.Mutex
	body     string
	status   int
	cache    string
	delay    time.Duration
	requests atomic.Int64
}

func newIDP(t *testing.T, body string) *idp {
	s := &idp{body: body, status: 200}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		body, status, cache, delay := s.body, s.status, s.cache, s.delay
		s.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		if cache != "" {
			w.Header().Set("Cache-Control", cache)
		}
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *idp) set(f func(s *idp)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// ask runs the resources guest's authorize-join with token "op url" and
// returns its errorcode and message.
func ask(h *plugin.Host, op, url string) (string, string) {
	out := h.AuthorizeJoin(context.Background(), &plugin.JoinRequest{Token: op + " " + url, Channel: "c", Protocol: "p"})
	return out.ErrorCode, out.Error
}

// eventually polls f every 20 ms until it returns true or 5 s pass.
func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func resourceHost(t *testing.T, rc plugin.ResourceConfig, config string, urls ...string) (*plugin.Host, *relaytest.LogBuffer) {
	t.Helper()
	return load(t, plugin.Config{Resources: rc, Plugins: []plugin.Spec{{
		Name: "res", Path: plugintest.Guest(t, "resources"), Config: []byte(config), Resources: urls}}})
}

func TestResourcesReadAndRefresh(t *testing.T) {
	srv := newIDP(t, `{"keys":["a"]}`)
	var outcomes sync.Map
	rc := plugin.ResourceConfig{MinRefresh: 100 * time.Millisecond, MaxRefresh: time.Hour,
		ObserveFetch: func(p, u, outcome string) {
			n, _ := outcomes.LoadOrStore(outcome, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
		}}
	url := srv.URL + "/jwks.json"
	h, _ := resourceHost(t, rc, url, url)

	if code, m := ask(h, "read", url); code != "ok" || m != `1:{"keys":["a"]}` {
		t.Fatalf("read: %s %q", code, m)
	}
	if code, m := ask(h, "version", url); code != "ok" || m != "1" {
		t.Fatalf("version: %s %q", code, m)
	}
	if code, _ := ask(h, "read", srv.URL+"/other"); code != "not_allowed" {
		t.Fatalf("a URL not listed: %s", code)
	}
	if code, m := ask(h, "small", url); code != "ok" || m != `14:"\x00\x00\x00\x00"` {
		t.Fatalf("small destination: %s %q", code, m)
	}
	if code, m := ask(h, "outside", url); code != "ok" || m != "-3" {
		t.Fatalf("destination outside memory: %s %q", code, m)
	}

	// The IdP rotates; without Cache-Control the host would keep the old
	// content for MaxRefresh (an hour), but the plugin asks for a refresh.
	srv.set(func(s *idp) { s.body = `{"keys":["b"]}` })
	start := time.Now()
	ask(h, "refresh", url)
	eventually(t, "the new content is read", func() bool { _, m := ask(h, "read", url); return m == `2:{"keys":["b"]}` })
	if e := time.Since(start); e > 2*time.Second {
		t.Fatalf("refresh took %v", e)
	}
	// Asking again at once is limited to one fetch per MinRefresh.
	before := srv.requests.Load()
	for range 20 {
		ask(h, "refresh", url)
	}
	time.Sleep(50 * time.Millisecond)
	if n := srv.requests.Load() - before; n > 1 {
		t.Fatalf("20 refresh requests within MinRefresh made %d fetches, want at most 1", n)
	}
	// The same content again is not a new version.
	time.Sleep(150 * time.Millisecond)
	ask(h, "refresh", url)
	eventually(t, "an unchanged fetch", func() bool {
		n, ok := outcomes.Load(plugin.FetchUnchanged)
		return ok && n.(*atomic.Int64).Load() > 0
	})
	if _, m := ask(h, "version", url); m != "2" {
		t.Fatalf("version after an unchanged fetch: %s", m)
	}
}

func TestResourcesKeepLastGoodContent(t *testing.T) {
	srv := newIDP(t, "good")
	url := srv.URL + "/r"
	h, logs := resourceHost(t, plugin.ResourceConfig{MinRefresh: 50 * time.Millisecond, Timeout: 200 * time.Millisecond}, "", url)

	for _, c := range []struct {
		name string
		f    func(s *idp)
	}{
		{"server errors", func(s *idp) { s.status = 503; s.body = "down" }},
		{"timeouts", func(s *idp) { s.status = 200; s.body = "late"; s.delay = time.Second }},
		{"empty bodies", func(s *idp) { s.delay = 0; s.body = "" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv.set(c.f)
			before := srv.requests.Load()
			// Failures back off (50 ms at most here) and keep being retried.
			eventually(t, "two failed fetches", func() bool { ask(h, "refresh", url); return srv.requests.Load() >= before+2 })
			start := time.Now()
			code, m := ask(h, "read", url)
			if code != "ok" || m != "1:good" {
				t.Fatalf("during %s the plugin read %s %q, want the last good content", c.name, code, m)
			}
			// The guest never waits for the network.
			if e := time.Since(start); e > 50*time.Millisecond {
				t.Fatalf("a read took %v while the server was failing", e)
			}
		})
	}
	if !strings.Contains(logs.String(), "plugin resource fetch failed") || !strings.Contains(logs.String(), "HTTP status 503") {
		t.Fatalf("no failure logged:\n%s", logs)
	}
	srv.set(func(s *idp) { s.body = "recovered" })
	eventually(t, "recovery", func() bool { _, m := ask(h, "read", url); return m == "2:recovered" })
}

func TestResourcesAtStartUp(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String() + "/jwks.json"
	l.Close()

	t.Run("an unreachable URL stops Load by default", func(t *testing.T) {
		start := time.Now()
		_, err := plugin.Load(context.Background(), plugin.Config{CacheDir: plugintest.CacheDir(t), Plugins: []plugin.Spec{{
			Name: "jwt-auth", Path: plugintest.Guest(t, "resources"), Resources: []string{dead}}}}, nil)
		if err == nil {
			t.Fatal("Load succeeded")
		}
		for _, want := range []string{"plugin jwt-auth", dead, "RELAY_PLUGIN_RESOURCES_JWT_AUTH", "RELAY_PLUGIN_RESOURCE_STARTUP=wait"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		if e := time.Since(start); e > 3*time.Second {
			t.Errorf("failing took %v", e)
		}
	})

	t.Run("StartWithout starts and serves it when it arrives", func(t *testing.T) {
		srv := newIDP(t, "late keys")
		srv.set(func(s *idp) { s.status = 503 })
		url := srv.URL + "/jwks.json"
		h, _ := resourceHost(t, plugin.ResourceConfig{StartWithout: true, MinRefresh: 50 * time.Millisecond}, url, url)
		if code, _ := ask(h, "read", url); code != "unavailable" {
			t.Fatalf("before the first fetch: %s", code)
		}
		st := h.Resources()
		if len(st) != 1 || st[0].Version != 0 || st[0].Err == nil || !st[0].FetchedAt.IsZero() {
			t.Fatalf("status %+v", st)
		}
		srv.set(func(s *idp) { s.status = 200 })
		eventually(t, "the resource arrives", func() bool { _, m := ask(h, "read", url); return m == "1:late keys" })
		if st := h.Resources(); st[0].Version != 1 || st[0].Err != nil || time.Since(st[0].FetchedAt) > 5*time.Second {
			t.Fatalf("status %+v", st)
		}
	})

	t.Run("a configuration naming a URL not listed is refused", func(t *testing.T) {
		_, err := plugin.Load(context.Background(), plugin.Config{CacheDir: plugintest.CacheDir(t), Plugins: []plugin.Spec{{
			Name: "res", Path: plugintest.Guest(t, "resources"), Config: []byte("https://idp.example/jwks.json")}}}, nil)
		if err == nil || !strings.Contains(err.Error(), "RELAY_PLUGIN_RESOURCES_<NAME>") {
			t.Fatalf("Load: %v", err)
		}
	})
}

func TestResourcesHonourMaxAgeWithinBounds(t *testing.T) {
	for _, c := range []struct {
		name, cacheControl string
		min, max, period   time.Duration
	}{
		{"a day cut to MaxRefresh", "public, max-age=86400", 50 * time.Millisecond, 150 * time.Millisecond, 150 * time.Millisecond},
		{"0 raised to MinRefresh", "max-age=0", 400 * time.Millisecond, time.Hour, 400 * time.Millisecond},
		{"none means MaxRefresh", "", 50 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := newIDP(t, "k")
			srv.set(func(s *idp) { s.cache = c.cacheControl })
			start := time.Now()
			resourceHost(t, plugin.ResourceConfig{MinRefresh: c.min, MaxRefresh: c.max}, "", srv.URL)
			time.Sleep(1200 * time.Millisecond)
			n, most := srv.requests.Load(), 1+int64(time.Since(start)/c.period)
			if n > most || n < 3 {
				t.Fatalf("%d fetches in %v with a refresh every %v (want 3..%d)", n, time.Since(start), c.period, most)
			}
		})
	}
}

func TestResourcesEnv(t *testing.T) {
	env := map[string]string{
		"RELAY_PLUGIN_RESOURCES_JWT_AUTH": "https://a.example/jwks.json, http://127.0.0.1:8080/keys",
	}
	specs, err := plugin.SpecsFromEnv("/p/jwt-auth.wasm", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil || len(specs) != 1 || strings.Join(specs[0].Resources, " ") != "https://a.example/jwks.json http://127.0.0.1:8080/keys" {
		t.Fatalf("specs %+v, %v", specs, err)
	}
	env["RELAY_PLUGIN_RESOURCES_JWT_AUTH"] = "file:///etc/passwd"
	if _, err := plugin.SpecsFromEnv("/p/jwt-auth.wasm", func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err == nil ||
		!strings.Contains(err.Error(), "RELAY_PLUGIN_RESOURCES_JWT_AUTH") {
		t.Fatalf("a file URL: %v", err)
	}
}

// TestABIDocumentsResourceImports checks that ABI.md and the SDK describe
// the resource imports the host provides.
func TestABIDocumentsResourceImports(t *testing.T) {
	root := plugintest.RepoRoot(t)
	abi, _ := os.ReadFile(filepath.Join(root, "plugin-sdk", "ABI.md"))
	sdk, _ := os.ReadFile(filepath.Join(root, "plugin-sdk", "resource_wasip1.go"))
	for _, want := range []string{"`relay.resource`", "`relay.resource_refresh`", "RELAY_PLUGIN_RESOURCES_<NAME>"} {
		if !strings.Contains(string(abi), want) {
			t.Errorf("ABI.md does not mention %s", want)
		}
	}
	for _, want := range []string{"//go:wasmimport relay resource\n", "//go:wasmimport relay resource_refresh\n"} {
		if !strings.Contains(string(sdk), want) {
			t.Errorf("the SDK does not import %q", want)
		}
	}
}

// A server that keeps failing is retried with exponential backoff (1 s,
// 2 s, 4 s, ... at most MinRefresh), not hammered.
func TestResourcesBackOff(t *testing.T) {
	srv := newIDP(t, "down")
	srv.set(func(s *idp) { s.status = 503 })
	start := time.Now()
	resourceHost(t, plugin.ResourceConfig{StartWithout: true, MinRefresh: time.Minute}, "", srv.URL)
	time.Sleep(5500*time.Millisecond - time.Since(start))
	// Attempts at about 0, 1 and 3 s (the next at 7 s); a fixed 1 s retry
	// would have made 6.
	if n := srv.requests.Load(); n < 2 || n > 4 {
		t.Fatalf("%d fetches in 5.5 s of failures, want 3 (backoff 1 s, 2 s, 4 s)", n)
	}
}
