package plugin_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relay-project/relay/relay/internal/plugin"
	"github.com/relay-project/relay/relay/internal/plugin/plugintest"
)

// relay.verify_signature, through the SDK in a real guest.
func TestVerifySignatureImport(t *testing.T) {
	h, _ := resourceHost(t, plugin.ResourceConfig{}, "")
	b64 := base64.RawURLEncoding.EncodeToString
	der := func(pub any) []byte {
		d, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	msg := []byte("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbm4ifQ")
	d256 := sha256.Sum256(msg)
	d384 := sha512.Sum384(msg)

	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	rs, _ := rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA256, d256[:])
	ps, _ := rsa.SignPSS(rand.Reader, rsaKey, crypto.SHA256, d256[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	weakSig, _ := rsa.SignPKCS1v15(rand.Reader, weak, crypto.SHA256, d256[:])
	ec := func(k *ecdsa.PrivateKey, d []byte) []byte {
		r, s, _ := ecdsa.Sign(rand.Reader, k, d)
		n := (k.Curve.Params().BitSize + 7) / 8
		return append(r.FillBytes(make([]byte, n)), s.FillBytes(make([]byte, n))...)
	}
	es256, es384 := ec(p256, d256[:]), ec(p384, d384[:])
	ed := ed25519.Sign(edPriv, msg)
	other := append([]byte(nil), msg...)
	other[5] ^= 1

	for _, c := range []struct {
		name, alg string
		key, msg  []byte
		sig       []byte
		code, out string
	}{
		{"RS256", "RS256", der(&rsaKey.PublicKey), msg, rs, "ok", "true"},
		{"PS256", "PS256", der(&rsaKey.PublicKey), msg, ps, "ok", "true"},
		{"ES256", "ES256", der(&p256.PublicKey), msg, es256, "ok", "true"},
		{"ES384", "ES384", der(&p384.PublicKey), msg, es384, "ok", "true"},
		{"EdDSA", "EdDSA", der(edPub), msg, ed, "ok", "true"},
		{"RS256 over other bytes", "RS256", der(&rsaKey.PublicKey), other, rs, "ok", "false"},
		{"ES384 over other bytes", "ES384", der(&p384.PublicKey), other, es384, "ok", "false"},
		{"PKCS #1 signature checked as PSS", "PS256", der(&rsaKey.PublicKey), msg, rs, "ok", "false"},
		{"an RSA key for ES256", "ES256", der(&rsaKey.PublicKey), msg, es256, "bad_key", ""},
		{"a P-256 key for ES384", "ES384", der(&p256.PublicKey), msg, es384, "bad_key", ""},
		{"an RSA key of 1024 bits", "RS256", der(&weak.PublicKey), msg, weakSig, "bad_key", ""},
		{"a key that is not DER", "RS256", []byte("secret"), msg, rs, "bad_key", ""},
		{"HS256 is the guest's business", "HS256", der(&rsaKey.PublicKey), msg, rs, "bad_alg", ""},
		{"none", "none", der(&rsaKey.PublicKey), msg, nil, "bad_alg", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			sig := c.sig
			if len(sig) == 0 {
				sig = []byte{0}
			}
			code, out := ask(h, "verify", strings.Join([]string{c.alg, b64(c.key), b64(c.msg), b64(sig)}, " "))
			if code != c.code || (c.out != "" && out != c.out) {
				t.Fatalf("got %s %q, want %s %q", code, out, c.code, c.out)
			}
		})
	}
}

// TestVerifySignatureVectors runs the SDK's signature vectors
// (plugin-sdk/testdata/signature_vectors.json) through a real guest, so
// relay.verify_signature answers each exactly as the SDK's native fallback
// does under plain go test (TestSignatureVectors in plugin-sdk reads the
// same file). The two copies of the rules stay in agreement through it.
func TestVerifySignatureVectors(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(plugintest.RepoRoot(t), "plugin-sdk", "testdata", "signature_vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vectors []struct {
		Name, Alg, Want string
		Key, Msg, Sig   []byte
	}
	if err := json.Unmarshal(b, &vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors) < 50 {
		t.Fatalf("only %d vectors", len(vectors))
	}
	h, _ := resourceHost(t, plugin.ResourceConfig{}, "")
	b64 := base64.RawURLEncoding.EncodeToString
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			code, out := ask(h, "verify", strings.Join([]string{v.Alg, b64(v.Key), b64(v.Msg), b64(v.Sig)}, " "))
			got := code
			if code == "ok" {
				got = map[string]string{"true": "valid", "false": "invalid"}[out]
			}
			if got != v.Want {
				t.Errorf("got %s %q, want %s", code, out, v.Want)
			}
		})
	}
}
