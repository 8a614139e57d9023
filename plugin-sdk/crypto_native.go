//go:build !wasip1

package sdk

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	_ "crypto/sha256" // registers crypto.SHA256
	_ "crypto/sha512" // registers crypto.SHA384, crypto.SHA512
	"crypto/x509"
	"math/big"
)

// This is a second copy of the host's rules (relay/internal/plugin/crypto.go
// in the relay module), on purpose: the SDK is a module without
// dependencies, so it cannot import the host, and the relay module does not
// depend on the SDK (go install of the relay would then need the SDK
// published at a matching version). The vectors in
// testdata/signature_vectors.json keep the two in agreement: this module's
// TestSignatureVectors checks this copy against them, and the host's
// TestVerifySignatureVectors runs the same file through a real guest.
// Change a rule in both copies and in the vectors.

// VerifySignature checks sig, a JWS signature made with algorithm alg over
// msg, against a public key in PKIX DER. Outside a wasm host (unit tests of
// plugin logic) it runs in the process, with the host's rules.
func VerifySignature(alg string, publicKeyDER, msg, sig []byte) (bool, error) {
	hashes := map[string]crypto.Hash{"RS256": crypto.SHA256, "RS384": crypto.SHA384, "RS512": crypto.SHA512,
		"PS256": crypto.SHA256, "PS384": crypto.SHA384, "PS512": crypto.SHA512, "ES256": crypto.SHA256, "ES384": crypto.SHA384, "EdDSA": 0}
	h, ok := hashes[alg]
	if !ok {
		return verifyResult(verifyUnsupported)
	}
	pub, err := x509.ParsePKIXPublicKey(publicKeyDER)
	if err != nil {
		return verifyResult(verifyBadKey)
	}
	var digest []byte
	if h != 0 {
		d := h.New()
		d.Write(msg)
		digest = d.Sum(nil)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if alg[0] == 'E' || k.N.BitLen() < 2048 || k.N.BitLen() > 8192 {
			return verifyResult(verifyBadKey)
		}
		if alg[0] == 'P' {
			return rsa.VerifyPSS(k, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil, nil
		}
		return rsa.VerifyPKCS1v15(k, h, digest, sig) == nil, nil
	case *ecdsa.PublicKey:
		curve := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384()}[alg]
		if k.Curve != curve {
			return verifyResult(verifyBadKey)
		}
		n := (curve.Params().BitSize + 7) / 8
		return len(sig) == 2*n && ecdsa.Verify(k, digest, new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])), nil
	case ed25519.PublicKey:
		if alg != "EdDSA" {
			return verifyResult(verifyBadKey)
		}
		return ed25519.Verify(k, msg, sig), nil
	}
	return verifyResult(verifyBadKey)
}
