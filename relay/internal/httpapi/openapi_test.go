package httpapi_test

// The drift test: openapi.json against the real handlers, served by a real
// relay on loopback. It fails when a path, method, request field, status
// or response field exists on one side only.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/relay-project/relay/relay/internal/httpapi"
	"github.com/relay-project/relay/relay/internal/relaytest"
)

type doc struct {
	root  map[string]any
	paths map[string]any
}

func loadDoc(t *testing.T) *doc {
	t.Helper()
	data, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(data, &root); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if v, _ := root["openapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Fatalf("openapi version %q", v)
	}
	return &doc{root: root, paths: root["paths"].(map[string]any)}
}

// resolve follows a local $ref.
func (d *doc) resolve(t *testing.T, v map[string]any) map[string]any {
	t.Helper()
	for {
		ref, ok := v["$ref"].(string)
		if !ok {
			return v
		}
		var cur any = d.root
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			m, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("bad $ref %s", ref)
			}
			cur = m[part]
		}
		next, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("unresolved $ref %s", ref)
		}
		v = next
	}
}

func (d *doc) operation(t *testing.T, method, path string) map[string]any {
	t.Helper()
	p, ok := d.paths[path].(map[string]any)
	if !ok {
		t.Fatalf("%s is not documented", path)
	}
	op, ok := p[strings.ToLower(method)].(map[string]any)
	if !ok {
		t.Fatalf("%s %s is not documented", method, path)
	}
	return op
}

// responseSchema returns the schema documented for status, failing when
// the status is not documented.
func (d *doc) responseSchema(t *testing.T, method, path string, status int) map[string]any {
	t.Helper()
	if item, ok := d.paths[path].(map[string]any); ok && item[strings.ToLower(method)] == nil {
		// A method the path does not have: its documented operation must
		// document the 405.
		if status != http.StatusMethodNotAllowed {
			t.Fatalf("%s %s answered %d, want 405", method, path, status)
		}
		for m := range item {
			method = m
		}
	}
	resps := d.operation(t, method, path)["responses"].(map[string]any)
	r, ok := resps[fmt.Sprint(status)].(map[string]any)
	if !ok {
		t.Fatalf("%s %s answered %d, which is not documented", method, path, status)
	}
	r = d.resolve(t, r)
	return d.resolve(t, r["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any))
}

// validate checks v against schema s (the subset of JSON Schema the
// document uses) and returns the problems.
func (d *doc) validate(t *testing.T, s map[string]any, v any, at string) []string {
	t.Helper()
	s = d.resolve(t, s)
	var errs []string
	if alts, ok := s["oneOf"].([]any); ok {
		n := 0
		for _, a := range alts {
			if len(d.validate(t, a.(map[string]any), v, at)) == 0 {
				n++
			}
		}
		if n != 1 {
			errs = append(errs, fmt.Sprintf("%s: matches %d of oneOf", at, n))
		}
		return errs
	}
	if enum, ok := s["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			if fmt.Sprint(e) == fmt.Sprint(v) {
				found = true
			}
		}
		if !found {
			errs = append(errs, fmt.Sprintf("%s: %v not in %v", at, v, enum))
		}
	}
	switch s["type"] {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return append(errs, fmt.Sprintf("%s: want object, got %T", at, v))
		}
		props, _ := s["properties"].(map[string]any)
		for _, r := range asStrings(s["required"]) {
			if _, ok := m[r]; !ok {
				errs = append(errs, fmt.Sprintf("%s: missing required %q", at, r))
			}
		}
		for k, x := range m {
			ps, ok := props[k].(map[string]any)
			if !ok {
				if props != nil && s["additionalProperties"] != true {
					errs = append(errs, fmt.Sprintf("%s: undocumented field %q", at, k))
				}
				continue
			}
			errs = append(errs, d.validate(t, ps, x, at+"."+k)...)
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return append(errs, fmt.Sprintf("%s: want array, got %T", at, v))
		}
		for i, x := range a {
			errs = append(errs, d.validate(t, s["items"].(map[string]any), x, fmt.Sprintf("%s[%d]", at, i))...)
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			return append(errs, fmt.Sprintf("%s: want string, got %T", at, v))
		}
		if s["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %q is not date-time", at, str))
			}
		}
		if min, ok := s["minLength"].(float64); ok && float64(len(str)) < min {
			errs = append(errs, fmt.Sprintf("%s: shorter than %v", at, min))
		}
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return append(errs, fmt.Sprintf("%s: want integer, got %T", at, v))
		}
		i, err := n.Int64()
		if err != nil {
			return append(errs, fmt.Sprintf("%s: %v is not an integer", at, n))
		}
		if min, ok := s["minimum"].(float64); ok && float64(i) < min {
			errs = append(errs, fmt.Sprintf("%s: %d below minimum %v", at, i, min))
		}
		if max, ok := s["maximum"].(float64); ok && float64(i) > max {
			errs = append(errs, fmt.Sprintf("%s: %d above maximum %v", at, i, max))
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			errs = append(errs, fmt.Sprintf("%s: want boolean, got %T", at, v))
		}
	}
	return errs
}

func asStrings(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		out = append(out, x.(string))
	}
	return out
}

// checker sends requests to a real relay and checks every answer against
// the document.
type checker struct {
	t    *testing.T
	d    *doc
	base string
	seen map[string]bool // "METHOD path status" answered
}

func (c *checker) do(method, path, query string, body []byte) (int, map[string]any) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.base+path+query, bytes.NewReader(body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		c.t.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	var v map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		c.t.Fatalf("%s %s: body %q: %v", method, path, data, err)
	}
	schema := c.d.responseSchema(c.t, method, path, resp.StatusCode)
	if errs := c.d.validate(c.t, schema, v, "body"); len(errs) > 0 {
		c.t.Fatalf("%s %s%s -> %d %s:\n%s", method, path, query, resp.StatusCode, data, strings.Join(errs, "\n"))
	}
	if d := c.d.paths[path].(map[string]any); d[strings.ToLower(method)] == nil {
		for m := range d {
			method = strings.ToUpper(m)
		}
	}
	c.seen[fmt.Sprintf("%s %s %d", method, path, resp.StatusCode)] = true
	return resp.StatusCode, v
}

// sample returns a value valid for schema s.
func (c *checker) sample(s map[string]any) any {
	s = c.d.resolve(c.t, s)
	if def, ok := s["default"]; ok {
		return def
	}
	switch s["type"] {
	case "string":
		return "x"
	case "integer":
		if min, ok := s["minimum"].(float64); ok {
			return int(min)
		}
		return 0
	case "boolean":
		return false
	case "object":
		return map[string]any{}
	}
	c.t.Fatalf("no sample for schema %v", s)
	return nil
}

func TestOpenAPIMatchesHandlers(t *testing.T) {
	d := loadDoc(t)

	// 1. Paths and methods: the same set on both sides.
	var documented []string
	for p, item := range d.paths {
		for m := range item.(map[string]any) {
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	sort.Strings(documented)
	routes := httpapi.New(nil, httpapi.Config{}).Routes()
	if strings.Join(documented, "\n") != strings.Join(routes, "\n") {
		t.Fatalf("documented operations:\n%s\nhandler routes:\n%s", strings.Join(documented, "\n"), strings.Join(routes, "\n"))
	}

	// 2. Every answer of the real relay is documented and matches its
	// schema (checked inside do).
	cfg := relaytest.Config(t)
	cfg.AuthorityIPs = []string{"127.0.0.1"}
	r := relaytest.Start(t, cfg, "")
	c := &checker{t: t, d: d, base: "http://" + r.Addr, seen: map[string]bool{}}

	// A member, so presence and direct publish have someone to show.
	ws := relaytest.Dial(t, r.URL, nil)
	ws.Send(`{"cmd":"JOIN","channel":"c","protocol":"p"}`)
	joined := ws.NextMap()

	for _, op := range []struct{ method, path, schema string }{
		{"POST", "/v1/tokens", "TokenRequest"},
		{"POST", "/v1/publish", "PublishRequest"},
	} {
		req := d.resolve(t, d.operation(t, op.method, op.path)["requestBody"].(map[string]any))
		schema := d.resolve(t, req["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any))
		if schema["additionalProperties"] != false {
			t.Fatalf("%s: request schema must list every field (additionalProperties: false)", op.schema)
		}
		props := schema["properties"].(map[string]any)
		var docFields []string
		for name := range props {
			docFields = append(docFields, name)
		}
		handlerFields := httpapi.New(nil, httpapi.Config{}).BodyFields(op.path)
		sort.Strings(docFields)
		sort.Strings(handlerFields)
		if strings.Join(docFields, ",") != strings.Join(handlerFields, ",") {
			t.Fatalf("%s %s: documented fields %v, handler accepts %v", op.method, op.path, docFields, handlerFields)
		}
		required := asStrings(schema["required"])
		base := map[string]any{}
		for _, r := range required {
			base[r] = c.sample(props[r].(map[string]any))
		}
		body, _ := json.Marshal(base)
		if st, v := c.do(op.method, op.path, "", body); st/100 != 2 {
			t.Fatalf("%s %s with the required fields only: %d %v", op.method, op.path, st, v)
		}
		// Each documented optional field is known to the handler.
		for name, ps := range props {
			if _, isReq := base[name]; isReq {
				continue
			}
			withField := map[string]any{name: c.sample(ps.(map[string]any))}
			for k, v := range base {
				withField[k] = v
			}
			body, _ := json.Marshal(withField)
			st, v := c.do(op.method, op.path, "", body)
			if st == http.StatusBadRequest && v["errorcode"] == "invalid_data" {
				t.Fatalf("%s %s: documented field %q refused: %v", op.method, op.path, name, v)
			}
		}
		// Each required field is required; undocumented fields are refused.
		for _, r := range required {
			without := map[string]any{}
			for k, v := range base {
				if k != r {
					without[k] = v
				}
			}
			body, _ := json.Marshal(without)
			if st, v := c.do(op.method, op.path, "", body); st != http.StatusBadRequest {
				t.Fatalf("%s %s without %q: %d %v", op.method, op.path, r, st, v)
			}
		}
		extra := map[string]any{"undocumented": 1}
		for k, v := range base {
			extra[k] = v
		}
		body, _ = json.Marshal(extra)
		if st, v := c.do(op.method, op.path, "", body); st != http.StatusBadRequest || v["errorcode"] != "invalid_data" {
			t.Fatalf("%s %s with an undocumented field: %d %v", op.method, op.path, st, v)
		}
	}

	// Further answers, so that every documented status is produced.
	c.do("POST", "/v1/tokens", "", []byte(`{"channel":"c","protocol":"p","clientmode":2,"extra":{"a":1},"makeauth":true,"lifetime":10}`))
	c.do("POST", "/v1/publish", "", []byte(fmt.Sprintf(`{"channel":"c","protocol":"p","cmd":"hi","to":%v,"fields":{"a":1}}`, joined["id"])))
	c.do("POST", "/v1/publish", "", []byte(`{"channel":"c","protocol":"p","cmd":"hi","to":424242}`))
	c.do("POST", "/v1/publish", "", []byte(`{"channel":"c","protocol":"p","cmd":"hi","retain":10}`))
	c.do("GET", "/v1/presence", "?channel=c&protocol=p", nil)
	c.do("GET", "/v1/presence", "?channel=none&protocol=p", nil)
	c.do("GET", "/v1/presence", "?channel=c", nil)
	c.do("GET", "/v1/openapi.json", "", nil)
	for _, route := range routes {
		method, path, _ := strings.Cut(route, " ")
		other := "PUT"
		if method == "PUT" {
			other = "PATCH"
		}
		c.do(other, path, "", nil)
	}
	// 408 needs a server with a read timeout, as cmd/relay builds.
	timed := &http.Server{Handler: r.Server, ReadTimeout: 300 * time.Millisecond}
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go timed.Serve(tln)
	defer timed.Close()
	for _, path := range []string{"/v1/tokens", "/v1/publish"} {
		nc, err := net.Dial("tcp", tln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(nc, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{", path)
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			t.Fatalf("%s with a slow body: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		nc.Close()
		if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), `"errorcode":"request_timeout"`) {
			t.Fatalf("%s with a slow body: %d %s", path, resp.StatusCode, body)
		}
		c.seen["POST "+path+" 408"] = true
	}
	for _, path := range []string{"/v1/tokens", "/v1/publish"} {
		c.do("POST", path, "", bytes.Repeat([]byte(" "), 70000)) // 413
		req, _ := http.NewRequest("POST", c.base+path, strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "text/plain")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("%s text/plain: %d", path, resp.StatusCode)
		}
		c.seen["POST "+path+" 415"] = true
	}
	// From a non-authority address: 401, and 403 with a wrong token.
	guest := &http.Client{Transport: guestTransport(t)}
	for _, route := range routes {
		method, path, _ := strings.Cut(route, " ")
		if path == "/v1/openapi.json" {
			continue
		}
		for _, tok := range []string{"", "wrong"} {
			body := `{"channel":"c","protocol":"p","cmd":"x"}`
			if path == "/v1/tokens" {
				body = `{"channel":"c","protocol":"p"}`
			}
			req, _ := http.NewRequest(method, c.base+path+"?channel=c&protocol=p", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			resp, err := guest.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var v map[string]any
			dec := json.NewDecoder(resp.Body)
			dec.UseNumber()
			_ = dec.Decode(&v)
			resp.Body.Close()
			if errs := d.validate(t, d.responseSchema(t, method, path, resp.StatusCode), v, "body"); len(errs) > 0 {
				t.Fatalf("%s %s as guest: %v", method, path, errs)
			}
			c.seen[fmt.Sprintf("%s %s %d", method, path, resp.StatusCode)] = true
		}
	}
	// 429 needs a tiny retain or token limit (the relay package's
	// TestRetainLimit and TestTokenStoreLimit produce it), 431 comes from
	// the relay in front of the Handler (TestHeaderLimits) and 503 needs a
	// failing token store; every other documented status must have been
	// produced here.
	for p, item := range d.paths {
		for m, op := range item.(map[string]any) {
			for status := range op.(map[string]any)["responses"].(map[string]any) {
				key := fmt.Sprintf("%s %s %s", strings.ToUpper(m), p, status)
				if status == "429" || status == "431" || status == "503" {
					continue
				}
				if !c.seen[key] {
					t.Errorf("documented answer %s was never produced by the handler", key)
				}
			}
		}
	}

	// 3. The relay serves the document in this folder, byte for byte.
	resp, err := http.Get(c.base + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	onDisk, _ := os.ReadFile("openapi.json")
	if !bytes.Equal(served, onDisk) {
		t.Fatal("the served OpenAPI document differs from openapi.json")
	}
}

func guestTransport(t *testing.T) *http.Transport {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	d := &netDialer{local: "127.0.0.2"}
	tr.DialContext = d.DialContext
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// netDialer dials from a fixed loopback address.
type netDialer struct{ local string }

func (d *netDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(d.local)}}
	return nd.DialContext(ctx, network, addr)
}
