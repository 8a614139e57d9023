// Package jsclient embeds the relay's browser SDK (relay.js and its
// TypeScript declarations relay.d.ts) and serves it over HTTP, so a page
// loads the SDK that matches the relay binary without any build step:
//
//	<script src="/sdk/relay.js"></script>           classic script
//	import { RelayClient } from "/sdk/relay.mjs"    ES module
//	/sdk/relay.d.ts                                 TypeScript declarations
//
// relay.mjs is relay.js with one export line appended, so both forms run
// the same code. Responses carry a strong ETag, Cache-Control and CORS
// headers (module scripts from another origin need them), and a matching
// If-None-Match gets 304 Not Modified.
package jsclient

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed relay.js
var relayJS []byte

//go:embed relay.d.ts
var relayDTS []byte

// moduleFooter turns relay.js into an ES module: the file defines the
// top-level RelaySDK object and this line exports its members.
const moduleFooter = "\nexport const { RelayClient, DRCClient, RelayError } = RelaySDK;\nexport default RelaySDK.RelayClient;\n"

// Path is where the relay mounts the SDK: Handler serves relay.js,
// relay.mjs and relay.d.ts below it.
const Path = "/sdk/"

// DefaultMaxAge is the Cache-Control max-age of the SDK files when
// Options.MaxAge is zero: short, because ETags make revalidation cheap and a
// relay upgrade should reach pages within minutes.
const DefaultMaxAge = 300

// Options configures Handler. The zero value (or nil) means defaults.
type Options struct {
	// MaxAge is the Cache-Control max-age in seconds; 0 means
	// DefaultMaxAge, a negative value sends "no-cache".
	MaxAge int
}

// File is one served SDK file.
type File struct {
	// Name is the file name below Path, such as "relay.js".
	Name string
	// ContentType is the Content-Type header value.
	ContentType string
	// Body is the file's content.
	Body []byte
	// ETag is the strong entity tag of Body, quoted.
	ETag string
}

// Files returns the SDK files the handler serves, in a fixed order. Each
// call returns fresh copies.
func Files() []File {
	module := make([]byte, 0, len(relayJS)+len(moduleFooter))
	module = append(append(module, relayJS...), moduleFooter...)
	return []File{
		newFile("relay.js", "text/javascript; charset=utf-8", bytes.Clone(relayJS)),
		newFile("relay.mjs", "text/javascript; charset=utf-8", module),
		newFile("relay.d.ts", "application/typescript; charset=utf-8", bytes.Clone(relayDTS)),
	}
}

func newFile(name, contentType string, body []byte) File {
	sum := sha256.Sum256(body)
	return File{
		Name:        name,
		ContentType: contentType,
		Body:        body,
		ETag:        `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`,
	}
}

type handler struct {
	files        map[string]File
	cacheControl string
}

// Handler returns an http.Handler that serves the SDK files by the last
// element of the request path (so it works under Path or any other prefix)
// and answers 404 for other names and 405 for methods other than GET and
// HEAD.
func Handler(opts *Options) http.Handler {
	var o Options
	if opts != nil {
		o = *opts
	}
	cc := "no-cache"
	switch {
	case o.MaxAge == 0:
		cc = "public, max-age=" + strconv.Itoa(DefaultMaxAge)
	case o.MaxAge > 0:
		cc = "public, max-age=" + strconv.Itoa(o.MaxAge)
	}
	h := &handler{files: make(map[string]File), cacheControl: cc}
	for _, f := range Files() {
		h.files[f.Name] = f
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, ok := h.files[path.Base(r.URL.Path)]
	if !ok || strings.HasSuffix(r.URL.Path, "/") {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	hd.Set("ETag", f.ETag)
	hd.Set("Cache-Control", h.cacheControl)
	hd.Set("Access-Control-Allow-Origin", "*")
	hd.Set("Cross-Origin-Resource-Policy", "cross-origin")
	hd.Set("X-Content-Type-Options", "nosniff")
	if etagMatch(r.Header.Values("If-None-Match"), f.ETag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Type", f.ContentType)
	hd.Set("Content-Length", strconv.Itoa(len(f.Body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(f.Body)
	}
}

// etagMatch reports whether an If-None-Match header list names etag, using
// the weak comparison RFC 9110 prescribes for If-None-Match.
func etagMatch(headers []string, etag string) bool {
	for _, hv := range headers {
		for _, tag := range strings.Split(hv, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
				return true
			}
		}
	}
	return false
}
