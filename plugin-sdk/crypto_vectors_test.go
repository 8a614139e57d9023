//go:build !wasip1

package sdk

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"testing"
)

// signatureVectorsFile holds the cases both copies of the signature rules
// must answer alike: VerifySignature here (the native fallback) and the
// host's relay.verify_signature, whose test reads the same file.
var signatureVectorsFile = filepath.Join("testdata", "signature_vectors.json")

var writeVectors = flag.Bool("write-signature-vectors", false, "write "+signatureVectorsFile+" anew (new keys and signatures)")

// signatureVector is one case: Want is "valid", "invalid", "bad_alg"
// (ErrSignatureAlg) or "bad_key" (ErrSignatureKey), known from how the case
// was made, not from either implementation.
type signatureVector struct {
	Name string `json:"name"`
	Alg  string `json:"alg"`
	Key  []byte `json:"key"`
	Msg  []byte `json:"msg"`
	Sig  []byte `json:"sig"`
	Want string `json:"want"`
}

func TestSignatureVectors(t *testing.T) {
	if *writeVectors {
		b, err := json.MarshalIndent(makeSignatureVectors(t), "", "\t")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(signatureVectorsFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(signatureVectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var vectors []signatureVector
	if err := json.Unmarshal(b, &vectors); err != nil {
		t.Fatal(err)
	}
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			ok, err := VerifySignature(v.Alg, v.Key, v.Msg, v.Sig)
			got := "invalid"
			switch {
			case errors.Is(err, ErrSignatureAlg):
				got = "bad_alg"
			case errors.Is(err, ErrSignatureKey):
				got = "bad_key"
			case err != nil:
				t.Fatalf("unexpected error %v", err)
			case ok:
				got = "valid"
			}
			if got != v.Want {
				t.Errorf("got %s, want %s", got, v.Want)
			}
		})
	}
}

// makeSignatureVectors makes, for each algorithm, a valid signature, the
// same signature over other bytes and damaged, and a key of the wrong kind;
// then the key-size bounds, malformed keys and refused algorithms.
func makeSignatureVectors(t *testing.T) []signatureVector {
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	der := func(pub any) []byte {
		d, err := x509.MarshalPKIXPublicKey(pub)
		must(err)
		return d
	}
	digest := func(h crypto.Hash, msg []byte) []byte {
		d := h.New()
		d.Write(msg)
		return d.Sum(nil)
	}
	msg := []byte("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbm4ifQ")
	other := append([]byte(nil), msg...)
	other[5] ^= 1
	damaged := func(sig []byte) []byte {
		s := append([]byte(nil), sig...)
		s[len(s)/2] ^= 0x40
		return s
	}

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	must(err)
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	must(err)
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	must(err)
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	must(err)
	ecSign := func(k *ecdsa.PrivateKey, h crypto.Hash) []byte {
		r, s, err := ecdsa.Sign(rand.Reader, k, digest(h, msg))
		must(err)
		n := (k.Curve.Params().BitSize + 7) / 8
		return append(r.FillBytes(make([]byte, n)), s.FillBytes(make([]byte, n))...)
	}
	// A public RSA key of exactly bits bits needs no private key: the
	// bounds are about the modulus alone.
	modulus := func(bits int) []byte {
		n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
		n.Or(n, big.NewInt(1))
		return der(&rsa.PublicKey{N: n, E: 65537})
	}

	var vs []signatureVector
	add := func(name, alg string, key, m, sig []byte, want string) {
		vs = append(vs, signatureVector{name, alg, key, m, sig, want})
	}
	rsaDER, edDER := der(&rsaKey.PublicKey), der(edPub)
	for _, a := range []struct {
		alg string
		h   crypto.Hash
	}{{"RS256", crypto.SHA256}, {"RS384", crypto.SHA384}, {"RS512", crypto.SHA512}} {
		sig, err := rsa.SignPKCS1v15(rand.Reader, rsaKey, a.h, digest(a.h, msg))
		must(err)
		add(a.alg+" valid", a.alg, rsaDER, msg, sig, "valid")
		add(a.alg+" over other bytes", a.alg, rsaDER, other, sig, "invalid")
		add(a.alg+" damaged", a.alg, rsaDER, msg, damaged(sig), "invalid")
		add(a.alg+" with a P-256 key", a.alg, der(&p256.PublicKey), msg, sig, "bad_key")
		add(a.alg+" with an Ed25519 key", a.alg, edDER, msg, sig, "bad_key")
		ps := "PS" + a.alg[2:]
		pss, err := rsa.SignPSS(rand.Reader, rsaKey, a.h, digest(a.h, msg), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		must(err)
		add(ps+" valid", ps, rsaDER, msg, pss, "valid")
		add(ps+" over other bytes", ps, rsaDER, other, pss, "invalid")
		add(ps+" damaged", ps, rsaDER, msg, damaged(pss), "invalid")
		add(ps+" checking a PKCS #1 v1.5 signature", ps, rsaDER, msg, sig, "invalid")
		add(a.alg+" checking a PSS signature", a.alg, rsaDER, msg, pss, "invalid")
		short, err := rsa.SignPSS(rand.Reader, rsaKey, a.h, digest(a.h, msg), &rsa.PSSOptions{SaltLength: 8})
		must(err)
		add(ps+" with a salt shorter than the hash", ps, rsaDER, msg, short, "invalid")
	}
	for _, a := range []struct {
		alg        string
		h          crypto.Hash
		key, wrong *ecdsa.PrivateKey
	}{{"ES256", crypto.SHA256, p256, p384}, {"ES384", crypto.SHA384, p384, p256}} {
		sig := ecSign(a.key, a.h)
		kd := der(&a.key.PublicKey)
		add(a.alg+" valid", a.alg, kd, msg, sig, "valid")
		add(a.alg+" over other bytes", a.alg, kd, other, sig, "invalid")
		add(a.alg+" damaged", a.alg, kd, msg, damaged(sig), "invalid")
		add(a.alg+" one byte short", a.alg, kd, msg, sig[:len(sig)-1], "invalid")
		add(a.alg+" empty", a.alg, kd, msg, nil, "invalid")
		add(a.alg+" with the other curve's key", a.alg, der(&a.wrong.PublicKey), msg, sig, "bad_key")
		add(a.alg+" with a P-521 key", a.alg, der(&p521.PublicKey), msg, sig, "bad_key")
		add(a.alg+" with an RSA key", a.alg, rsaDER, msg, sig, "bad_key")
		add(a.alg+" with an Ed25519 key", a.alg, edDER, msg, sig, "bad_key")
	}
	ed := ed25519.Sign(edPriv, msg)
	add("EdDSA valid", "EdDSA", edDER, msg, ed, "valid")
	add("EdDSA over other bytes", "EdDSA", edDER, other, ed, "invalid")
	add("EdDSA damaged", "EdDSA", edDER, msg, damaged(ed), "invalid")
	add("EdDSA one byte short", "EdDSA", edDER, msg, ed[:len(ed)-1], "invalid")
	add("EdDSA with an RSA key", "EdDSA", rsaDER, msg, ed, "bad_key")
	add("EdDSA with a P-256 key", "EdDSA", der(&p256.PublicKey), msg, ed, "bad_key")
	add("EdDSA with an X25519 key", "EdDSA", der(x25519.PublicKey()), msg, ed, "bad_key")

	weakSig, err := rsa.SignPKCS1v15(rand.Reader, weak, crypto.SHA256, digest(crypto.SHA256, msg))
	must(err)
	junk := make([]byte, 256)
	junk[0] = 1
	add("an RSA key of 1024 bits", "RS256", der(&weak.PublicKey), msg, weakSig, "bad_key")
	add("an RSA modulus of 2047 bits", "RS256", modulus(2047), msg, junk, "bad_key")
	add("an RSA modulus of 2048 bits", "RS256", modulus(2048), msg, junk, "invalid")
	add("an RSA modulus of 8192 bits", "PS512", modulus(8192), msg, junk, "invalid")
	add("an RSA modulus of 8193 bits", "PS512", modulus(8193), msg, junk, "bad_key")
	add("a key that is not DER", "RS256", []byte("secret"), msg, junk, "bad_key")
	add("no key", "ES256", nil, msg, ecSign(p256, crypto.SHA256), "bad_key")
	add("a key cut short", "RS256", rsaDER[:len(rsaDER)-10], msg, junk, "bad_key")
	add("a key with bytes after it", "EdDSA", append(append([]byte(nil), edDER...), 0), msg, ed, "bad_key")
	add("a private key in PKCS #8", "EdDSA", func() []byte {
		d, err := x509.MarshalPKCS8PrivateKey(edPriv)
		must(err)
		return d
	}(), msg, ed, "bad_key")
	add("HS256 is the plugin's business", "HS256", rsaDER, msg, junk, "bad_alg")
	add("none", "none", rsaDER, msg, nil, "bad_alg")
	add("ES512", "ES512", der(&p521.PublicKey), msg, junk, "bad_alg")
	add("an algorithm name in lower case", "rs256", rsaDER, msg, junk, "bad_alg")
	add("no algorithm", "", rsaDER, msg, junk, "bad_alg")
	add("an unknown algorithm with a malformed key", "XX999", []byte("secret"), msg, junk, "bad_alg")
	return vs
}
