package relay_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/relay-project/relay/relay/internal/plugin/plugintest"
	"github.com/relay-project/relay/relay/internal/relaytest"
)

// BenchmarkJoin compares, in one relay, a JOIN with a JWT that jwt-auth
// checks (keys fetched from a JWKS URL, the default 100 ms plugin
// deadline) with a JOIN with a grant token. Each operation is a join as
// relay-bench counts one: connect, WebSocket upgrade, JOIN, JOINED. It
// reports joins/s and the JOIN-to-JOINED latency (p50, p99), which for the
// JWT kinds is mostly the authorize-join call. grant+GRANT adds the
// backend's GRANT round trip, which a JWT makes unnecessary. JOINs refused
// with plugin_timeout (the deadline is wall-clock time, so a loaded machine
// can overrun it) are counted in "timeouts" and not in joins/s.
//
//	go test -run '^$' -bench BenchmarkJoin -benchtime 2000x ./relay
func BenchmarkJoin(b *testing.B) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u := func(x *big.Int, n int) string {
		return base64.RawURLEncoding.EncodeToString(x.FillBytes(make([]byte, n)))
	}
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]any{
		{"kty": "RSA", "kid": "rs", "alg": "RS256", "n": base64.RawURLEncoding.EncodeToString(rsaKey.N.Bytes()), "e": "AQAB"},
		{"kty": "EC", "kid": "ec", "alg": "ES256", "crv": "P-256", "x": u(ecKey.X, 32), "y": u(ecKey.Y, 32)},
	}})
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(jwks) }))
	defer idp.Close()
	cfg := relaytest.Config(b)
	cfg.AuthorityIPs = []string{authAddr}
	cfg.PluginCacheDir = plugintest.CacheDir(b)
	cfg.Plugins = []string{plugintest.BuildGo(b, "plugins", "./jwt-auth")}
	cfg.PluginConfigs = map[string]string{"jwt-auth": `{"issuer":"https://idp.test/","audience":"relay","jwks_url":"` + idp.URL + `"}`}
	cfg.PluginResources = map[string]string{"jwt-auth": idp.URL}
	r := relaytest.Start(b, cfg, "")

	claims, _ := json.Marshal(map[string]any{"iss": "https://idp.test/", "aud": "relay", "sub": "bench",
		"exp": time.Now().Add(time.Hour).Unix(), "relay": map[string]any{"channels": []string{"bench-*"}, "protocols": []string{"chat"}}})
	jwt := func(alg, kid string, sign func(digest []byte) []byte) string {
		h, _ := json.Marshal(map[string]string{"alg": alg, "kid": kid, "typ": "JWT"})
		in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(claims)
		d := sha256.Sum256([]byte(in))
		return in + "." + base64.RawURLEncoding.EncodeToString(sign(d[:]))
	}
	rs := jwt("RS256", "rs", func(d []byte) []byte { s, _ := rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA256, d); return s })
	es := jwt("ES256", "ec", func(d []byte) []byte {
		r, s, _ := ecdsa.Sign(rand.Reader, ecKey, d)
		return append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	})

	var seq atomic.Int64
	authority := relaytest.Dial(b, r.URL, &relaytest.DialOptions{Local: authAddr})
	var grantMu sync.Mutex
	grantFor := func(channel string) string {
		grantMu.Lock()
		defer grantMu.Unlock()
		authority.Send(fmt.Sprintf(`{"cmd":"GRANT","channel":%q,"protocol":"chat","clientmode":1,"extra":{}}`, channel))
		m := authority.NextMap()
		tok, _ := m["token"].(string)
		if tok == "" {
			b.Fatalf("GRANT: %v", m)
		}
		return tok
	}
	for _, kind := range []string{"grant", "grant+GRANT", "jwt-RS256", "jwt-ES256"} {
		b.Run(kind, func(b *testing.B) {
			channels := make([]string, b.N)
			tokens := make([]string, b.N)
			for i := range channels {
				channels[i] = fmt.Sprintf("bench-%d", seq.Add(1))
				switch kind {
				case "grant":
					tokens[i] = grantFor(channels[i]) // minted before timing
				case "jwt-RS256":
					tokens[i] = rs
				case "jwt-ES256":
					tokens[i] = es
				}
			}
			lat := make([]time.Duration, b.N)
			var next, timeouts atomic.Int64
			b.ResetTimer()
			start := time.Now()
			b.SetParallelism(4) // 4 × GOMAXPROCS joins in flight
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(next.Add(1) - 1)
					tok := tokens[i]
					if kind == "grant+GRANT" {
						tok = grantFor(channels[i])
					}
					c := relaytest.Dial(b, r.URL, &relaytest.DialOptions{Local: guestAddr})
					t0 := time.Now()
					c.Send(fmt.Sprintf(`{"cmd":"JOIN","channel":%q,"protocol":"chat","token":%q}`, channels[i], tok))
					m := c.NextMap()
					lat[i] = time.Since(t0)
					switch {
					case m["errorcode"] == "plugin_timeout":
						// The deadline is wall-clock time: on a loaded machine a
						// call can overrun it. Counted, not fatal.
						timeouts.Add(1)
					case m["cmd"] != "JOINED":
						b.Errorf("JOIN: %v", m)
						return
					}
					c.Conn().Close(websocket.StatusNormalClosure, "")
				}
			})
			elapsed := time.Since(start)
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(int64(b.N)-timeouts.Load())/elapsed.Seconds(), "joins/s")
			b.ReportMetric(float64(timeouts.Load()), "timeouts")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
