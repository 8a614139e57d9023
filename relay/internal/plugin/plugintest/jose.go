package plugintest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// JoseKey asks Jose for a key pair: kid names it, alg is a JWS algorithm
// jose can generate (RS256, PS256, ES256, ES384, EdDSA, ...).
type JoseKey struct {
	KID string `json:"kid"`
	Alg string `json:"alg"`
}

// JoseToken asks Jose for a token signed with the key KID (its algorithm
// unless Alg is set), or, with Unsecured, an alg "none" token.
type JoseToken struct {
	KID    string         `json:"kid,omitempty"`
	Alg    string         `json:"alg,omitempty"`
	Claims map[string]any `json:"claims"`
	// NoKID leaves kid out of the header.
	NoKID bool `json:"no_kid,omitempty"`
	// HMACWithPEMOf signs with HS256 using the SPKI PEM of that key's public
	// key as the secret: the algorithm-confusion attack.
	HMACWithPEMOf string `json:"hmac_with_pem_of,omitempty"`
	Unsecured     bool   `json:"unsecured,omitempty"`
}

// JoseRequest is one batch for Jose. Secrets are HS256 keys in base64url,
// by kid.
type JoseRequest struct {
	Keys    []JoseKey         `json:"keys"`
	Secrets map[string]string `json:"secrets,omitempty"`
	Tokens  []JoseToken       `json:"tokens"`
}

// JoseResult holds each key's public JWK and SPKI PEM by kid, and the
// tokens in request order.
type JoseResult struct {
	JWKs   map[string]json.RawMessage `json:"jwks"`
	PEMs   map[string]string          `json:"pems"`
	Tokens []string                   `json:"tokens"`
}

// Set returns a JSON Web Key Set of the public keys named.
func (r *JoseResult) Set(kids ...string) []byte {
	var keys []json.RawMessage
	for _, k := range kids {
		keys = append(keys, r.JWKs[k])
	}
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return b
}

// Jose mints keys and tokens with the jose npm package (run by node from
// plugins/jwt-auth/josetest), an implementation independent of jwt-auth.
// Without node or the installed package (npm ci in that folder) it skips
// the test, or fails it when RELAY_TEST_STRICT=1.
func Jose(t testing.TB, req JoseRequest) *JoseResult {
	t.Helper()
	dir := filepath.Join(RepoRoot(t), "plugins", "jwt-auth", "josetest")
	if _, err := exec.LookPath("node"); err != nil {
		SkipOrFail(t, "node is not installed; the jwt-auth tests mint tokens with the jose npm package")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "jose", "package.json")); err != nil {
		SkipOrFail(t, "npm package jose is not installed: run npm ci in %s", dir)
	}
	in, _ := json.Marshal(req)
	cmd := exec.Command("node", "mint.mjs")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("plugintest: jose: %v\n%s", err, stderr.Bytes())
	}
	var res JoseResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("plugintest: jose output: %v", err)
	}
	if len(res.Tokens) != len(req.Tokens) {
		t.Fatalf("plugintest: jose made %d tokens, asked for %d", len(res.Tokens), len(req.Tokens))
	}
	return &res
}
