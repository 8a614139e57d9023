package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	_ "crypto/sha256" // registers crypto.SHA256
	_ "crypto/sha512" // registers crypto.SHA384, crypto.SHA512
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"

	sdk "github.com/relay-project/relay/plugin-sdk"
)

// minRSABits is the smallest RSA modulus accepted (NIST SP 800-131A).
const minRSABits = 2048

// algorithm is one JWS algorithm: the key type it needs and how it checks
// a signature.
type algorithm struct {
	kty   string // JWK key type: RSA, EC, OKP, oct
	hash  crypto.Hash
	curve elliptic.Curve // EC only
	pss   bool           // RSA only: RSASSA-PSS instead of PKCS #1 v1.5
}

// algorithms are the supported JWS algorithms. Anything else, "none"
// first, is refused with jwt_unsupported_alg.
var algorithms = map[string]algorithm{
	"RS256": {kty: "RSA", hash: crypto.SHA256},
	"RS384": {kty: "RSA", hash: crypto.SHA384},
	"RS512": {kty: "RSA", hash: crypto.SHA512},
	"PS256": {kty: "RSA", hash: crypto.SHA256, pss: true},
	"PS384": {kty: "RSA", hash: crypto.SHA384, pss: true},
	"PS512": {kty: "RSA", hash: crypto.SHA512, pss: true},
	"ES256": {kty: "EC", hash: crypto.SHA256, curve: elliptic.P256()},
	"ES384": {kty: "EC", hash: crypto.SHA384, curve: elliptic.P384()},
	"EdDSA": {kty: "OKP"},
	"HS256": {kty: "oct", hash: crypto.SHA256},
}

// key is one verification key. A key is bound to its type and, when it
// declares one, its algorithm: an RSA public key is never an HMAC secret,
// whatever a token's header says.
type key struct {
	kid    string
	alg    string // the declared algorithm; "" allows every algorithm of kty (and curve)
	kty    string
	rsa    *rsa.PublicKey
	ec     *ecdsa.PublicKey
	ed     ed25519.PublicKey
	secret []byte
	der    []byte // PKIX DER of the public key, for relay.verify_signature
}

// allows reports whether the key may check a signature made with alg.
func (k *key) allows(alg string) bool {
	a, ok := algorithms[alg]
	switch {
	case !ok || a.kty != k.kty:
		return false
	case k.alg != "":
		return k.alg == alg
	case k.kty == "EC":
		return k.ec.Curve == a.curve
	}
	return true
}

// verify checks sig over signed with algorithm alg (which the key allows).
// HMAC runs in the guest; public-key algorithms run natively in the host
// (relay.verify_signature), which is 50 to 1000 times faster than the
// same code in the sandbox.
func (k *key) verify(alg string, signed, sig []byte) bool {
	if k.kty == "oct" {
		m := hmac.New(algorithms[alg].hash.New, k.secret)
		m.Write(signed)
		return hmac.Equal(m.Sum(nil), sig)
	}
	ok, err := sdk.VerifySignature(alg, k.der, signed, sig)
	return ok && err == nil
}

// keyConfig is a key written in the configuration's "keys".
type keyConfig struct {
	KID string `json:"kid"`
	Alg string `json:"alg"`
	// Secret is the HS256 key as text; SecretBase64 as base64.
	Secret       string `json:"secret"`
	SecretBase64 string `json:"secret_base64"`
	// PublicKey is a public key in PEM (PKIX "PUBLIC KEY", or PKCS #1
	// "RSA PUBLIC KEY"), or in base64: the 32 raw bytes of an Ed25519 key,
	// the uncompressed point of an EC key, or PKIX DER.
	PublicKey string `json:"public_key"`
}

func parseKeyConfig(kc keyConfig) (*key, error) {
	a, ok := algorithms[kc.Alg]
	if !ok {
		return nil, fmt.Errorf("alg %q is not supported (%s)", kc.Alg, supportedAlgs())
	}
	k := &key{kid: kc.KID, alg: kc.Alg, kty: a.kty}
	if a.kty == "oct" {
		switch {
		case kc.SecretBase64 != "":
			b, err := decodeB64(kc.SecretBase64)
			if err != nil {
				return nil, fmt.Errorf("secret_base64: %w", err)
			}
			k.secret = b
		default:
			k.secret = []byte(kc.Secret)
		}
		if len(k.secret) < 32 {
			return nil, errors.New("HS256 secret shorter than 32 bytes")
		}
		return k, nil
	}
	if kc.Secret != "" || kc.SecretBase64 != "" {
		return nil, fmt.Errorf("%s takes a public_key, not a secret", kc.Alg)
	}
	pub, err := parsePublicKey(kc.PublicKey, a)
	if err != nil {
		return nil, fmt.Errorf("%s public_key: %w", kc.Alg, err)
	}
	if err := k.setPublic(pub); err != nil {
		return nil, err
	}
	if !k.allows(kc.Alg) {
		return nil, fmt.Errorf("public_key is not a key for %s", kc.Alg)
	}
	return k, nil
}

// setPublic stores pub after checking it is strong enough.
func (k *key) setPublic(pub crypto.PublicKey) error {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits: at least %d are required", p.N.BitLen(), minRSABits)
		}
		k.rsa, k.kty = p, "RSA"
	case *ecdsa.PublicKey:
		k.ec, k.kty = p, "EC"
	case ed25519.PublicKey:
		k.ed, k.kty = p, "OKP"
	default:
		return fmt.Errorf("unsupported public key type %T", pub)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	k.der = der
	return nil
}

func parsePublicKey(s string, a algorithm) (crypto.PublicKey, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty")
	}
	if strings.HasPrefix(s, "-----BEGIN") {
		blk, _ := pem.Decode([]byte(s))
		if blk == nil {
			return nil, errors.New("bad PEM")
		}
		if blk.Type == "RSA PUBLIC KEY" {
			return x509.ParsePKCS1PublicKey(blk.Bytes)
		}
		return x509.ParsePKIXPublicKey(blk.Bytes)
	}
	b, err := decodeB64(s)
	if err != nil {
		return nil, err
	}
	switch {
	case a.kty == "OKP" && len(b) == ed25519.PublicKeySize:
		return ed25519.PublicKey(b), nil
	case a.kty == "EC" && len(b) > 0 && b[0] == 4:
		return ecdsa.ParseUncompressedPublicKey(a.curve, b)
	}
	return x509.ParsePKIXPublicKey(b)
}

// jwk is one JSON Web Key (RFC 7517) of a JWKS.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
	K   string `json:"k"`
}

// parseJWKS parses a JSON Web Key Set. Keys for encryption, of unknown
// types or algorithms, and RSA keys under 2048 bits are skipped (an
// identity provider's set often holds some); skipped says why for each.
// Symmetric keys (kty oct) are accepted only when secrets is true: a set
// fetched from a URL is public, so a secret in it is no secret.
func parseJWKS(raw []byte, secrets bool) (keys []*key, skipped []string, err error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, nil, fmt.Errorf("not a JWKS: %w", err)
	}
	if set.Keys == nil {
		return nil, nil, errors.New(`not a JWKS: no "keys" array`)
	}
	for i, r := range set.Keys {
		var j jwk
		if err := json.Unmarshal(r, &j); err != nil {
			skipped = append(skipped, fmt.Sprintf("keys[%d]: %v", i, err))
			continue
		}
		k, err := parseJWK(j, secrets)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("keys[%d] (kid %q): %v", i, j.Kid, err))
			continue
		}
		keys = append(keys, k)
	}
	return keys, skipped, nil
}

func parseJWK(j jwk, secrets bool) (*key, error) {
	if j.Use != "" && j.Use != "sig" {
		return nil, fmt.Errorf("use %q is not sig", j.Use)
	}
	k := &key{kid: j.Kid, alg: j.Alg}
	if j.Alg != "" {
		a, ok := algorithms[j.Alg]
		if !ok {
			return nil, fmt.Errorf("alg %q is not supported", j.Alg)
		}
		if a.kty != j.Kty {
			return nil, fmt.Errorf("alg %s does not go with kty %s", j.Alg, j.Kty)
		}
	}
	switch j.Kty {
	case "RSA":
		n, err1 := base64.RawURLEncoding.DecodeString(j.N)
		e, err2 := base64.RawURLEncoding.DecodeString(j.E)
		if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad n or e")
		}
		exp := int(new(big.Int).SetBytes(e).Int64())
		if exp < 3 || exp%2 == 0 {
			return nil, errors.New("bad exponent")
		}
		if err := k.setPublic(&rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}); err != nil {
			return nil, err
		}
	case "EC":
		var curve elliptic.Curve
		switch j.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		default:
			return nil, fmt.Errorf("curve %q is not supported", j.Crv)
		}
		x, err1 := base64.RawURLEncoding.DecodeString(j.X)
		y, err2 := base64.RawURLEncoding.DecodeString(j.Y)
		size := (curve.Params().BitSize + 7) / 8
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return nil, errors.New("bad x or y")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, err
		}
		if err := k.setPublic(pub); err != nil {
			return nil, err
		}
	case "OKP":
		x, err := base64.RawURLEncoding.DecodeString(j.X)
		if j.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("not an Ed25519 key")
		}
		if err := k.setPublic(ed25519.PublicKey(x)); err != nil {
			return nil, err
		}
	case "oct":
		if !secrets {
			return nil, errors.New("a symmetric key in a published JWKS is refused")
		}
		b, err := base64.RawURLEncoding.DecodeString(j.K)
		if err != nil || len(b) < 32 {
			return nil, errors.New("k is not base64url of at least 32 bytes")
		}
		k.secret, k.kty = b, "oct"
	default:
		return nil, fmt.Errorf("kty %q is not supported", j.Kty)
	}
	if j.Alg != "" && !k.allows(j.Alg) {
		return nil, fmt.Errorf("the key does not fit alg %s", j.Alg)
	}
	return k, nil
}

func decodeB64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "+/") {
		return base64.RawStdEncoding.DecodeString(s)
	}
	return base64.RawURLEncoding.DecodeString(s)
}

func supportedAlgs() string {
	return "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA, HS256"
}
