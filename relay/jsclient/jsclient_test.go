package jsclient_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/relay-project/relay/relay/jsclient"
)

func get(t *testing.T, h http.Handler, method, target string, header map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func TestHandlerServesFiles(t *testing.T) {
	source, err := os.ReadFile("relay.js")
	if err != nil {
		t.Fatal(err)
	}
	h := jsclient.Handler(nil)
	tests := []struct {
		name, path, contentType string
		wantPrefix              []byte
		wantSuffix              string
	}{
		{"classic script", "/sdk/relay.js", "text/javascript; charset=utf-8", source, ""},
		{"es module", "/sdk/relay.mjs", "text/javascript; charset=utf-8", source, "export default RelaySDK.RelayClient;\n"},
		{"typescript declarations", "/sdk/relay.d.ts", "application/typescript; charset=utf-8", []byte("// Type declarations"), ""},
		{"other prefix", "/static/relay.js", "text/javascript; charset=utf-8", source, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := get(t, h, http.MethodGet, tt.path, nil)
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", res.StatusCode)
			}
			if got := res.Header.Get("Content-Type"); got != tt.contentType {
				t.Errorf("Content-Type %q, want %q", got, tt.contentType)
			}
			if got := res.Header.Get("Cache-Control"); got != "public, max-age=300" {
				t.Errorf("Cache-Control %q", got)
			}
			if got := res.Header.Get("Access-Control-Allow-Origin"); got != "*" {
				t.Errorf("Access-Control-Allow-Origin %q, want * (cross-origin module imports need it)", got)
			}
			if etag := res.Header.Get("ETag"); len(etag) < 10 || etag[0] != '"' || etag[len(etag)-1] != '"' {
				t.Errorf("ETag %q is not a strong quoted tag", etag)
			}
			if !bytes.HasPrefix(body, tt.wantPrefix) {
				t.Errorf("body does not start with the expected content (%d bytes)", len(body))
			}
			if !strings.HasSuffix(string(body), tt.wantSuffix) {
				t.Errorf("body does not end with %q", tt.wantSuffix)
			}
			if got := res.Header.Get("Content-Length"); got != strconv.Itoa(len(body)) {
				t.Errorf("Content-Length %q, body %d bytes", got, len(body))
			}
		})
	}
}

func TestHandlerConditionalGet(t *testing.T) {
	h := jsclient.Handler(nil)
	first := get(t, h, http.MethodGet, "/sdk/relay.js", nil)
	etag := first.Header.Get("ETag")
	other := get(t, h, http.MethodGet, "/sdk/relay.mjs", nil).Header.Get("ETag")
	if etag == other {
		t.Fatalf("relay.js and relay.mjs share ETag %s although their bodies differ", etag)
	}
	tests := []struct {
		name, ifNoneMatch string
		want              int
	}{
		{"same etag", etag, http.StatusNotModified},
		{"weak form", "W/" + etag, http.StatusNotModified},
		{"in a list", `"old", ` + etag, http.StatusNotModified},
		{"star", "*", http.StatusNotModified},
		{"stale etag", `"stale"`, http.StatusOK},
		{"other file's etag", other, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := get(t, h, http.MethodGet, "/sdk/relay.js", map[string]string{"If-None-Match": tt.ifNoneMatch})
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.want)
			}
			if tt.want == http.StatusNotModified {
				if len(body) != 0 {
					t.Errorf("304 carried a %d-byte body", len(body))
				}
				if res.Header.Get("ETag") != etag || res.Header.Get("Cache-Control") == "" {
					t.Errorf("304 must repeat ETag and Cache-Control, got %v", res.Header)
				}
			}
		})
	}
}

func TestHandlerRejects(t *testing.T) {
	h := jsclient.Handler(nil)
	tests := []struct {
		name, method, path string
		want               int
	}{
		{"unknown file", http.MethodGet, "/sdk/other.js", http.StatusNotFound},
		{"directory", http.MethodGet, "/sdk/", http.StatusNotFound},
		{"post", http.MethodPost, "/sdk/relay.js", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if res := get(t, h, tt.method, tt.path, nil); res.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.want)
			}
		})
	}
}

func TestHandlerHead(t *testing.T) {
	res := get(t, jsclient.Handler(nil), http.MethodHead, "/sdk/relay.js", nil)
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || len(body) != 0 || res.Header.Get("ETag") == "" {
		t.Fatalf("HEAD: status %d, %d body bytes, ETag %q", res.StatusCode, len(body), res.Header.Get("ETag"))
	}
}

func TestHandlerMaxAge(t *testing.T) {
	tests := []struct {
		opts *jsclient.Options
		want string
	}{
		{nil, "public, max-age=300"},
		{&jsclient.Options{MaxAge: 60}, "public, max-age=60"},
		{&jsclient.Options{MaxAge: -1}, "no-cache"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			res := get(t, jsclient.Handler(tt.opts), http.MethodGet, "/sdk/relay.js", nil)
			if got := res.Header.Get("Cache-Control"); got != tt.want {
				t.Fatalf("Cache-Control %q, want %q", got, tt.want)
			}
		})
	}
}
