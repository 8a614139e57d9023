package plugin

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	_ "crypto/sha256" // registers crypto.SHA256
	_ "crypto/sha512" // registers crypto.SHA384, crypto.SHA512
	"crypto/x509"
	"math/big"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// relay.verify_signature checks a signature natively for the guest: in the
// sandbox (pure Go big-number code, a deadline check at every loop
// back-edge) an RS256 verification costs about 3 ms and an ES384 one 10 to
// 50 ms; here they cost tens of microseconds. It is pure computation over
// bytes the guest passes, bounded by the key size limits below.
//
// plugin-sdk/crypto_native.go repeats these rules for plugin code tested
// natively (plain go test, no host); it explains why there are two copies.
// plugin-sdk/testdata/signature_vectors.json holds the cases both must
// answer alike (TestVerifySignatureVectors here, TestSignatureVectors there).

// RSA moduli accepted by relay.verify_signature.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// signatureAlg is one algorithm relay.verify_signature supports, named as
// in JWS (RFC 7518).
type signatureAlg struct {
	hash  crypto.Hash
	kind  byte // 'r' RSA PKCS #1 v1.5, 'p' RSA-PSS, 'e' ECDSA, 'd' Ed25519
	curve elliptic.Curve
}

var signatureAlgs = map[string]signatureAlg{
	"RS256": {crypto.SHA256, 'r', nil},
	"RS384": {crypto.SHA384, 'r', nil},
	"RS512": {crypto.SHA512, 'r', nil},
	"PS256": {crypto.SHA256, 'p', nil},
	"PS384": {crypto.SHA384, 'p', nil},
	"PS512": {crypto.SHA512, 'p', nil},
	"ES256": {crypto.SHA256, 'e', elliptic.P256()},
	"ES384": {crypto.SHA384, 'e', elliptic.P384()},
	"EdDSA": {0, 'd', nil},
}

// keyCache keeps parsed public keys by their DER bytes, one per Host: a
// guest checks many tokens with the same few keys. It is cleared when full.
type keyCache struct {
	mu sync.Mutex
	m  map[string]crypto.PublicKey
}

const keyCacheSize = 256

func (kc *keyCache) parsedKey(der []byte) (crypto.PublicKey, bool) {
	kc.mu.Lock()
	k, ok := kc.m[string(der)]
	kc.mu.Unlock()
	if ok {
		return k, true
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, false
	}
	if r, ok := k.(*rsa.PublicKey); ok && (r.N.BitLen() < minRSABits || r.N.BitLen() > maxRSABits) {
		return nil, false
	}
	kc.mu.Lock()
	if kc.m == nil || len(kc.m) >= keyCacheSize {
		kc.m = map[string]crypto.PublicKey{}
	}
	kc.m[string(der)] = k
	kc.mu.Unlock()
	return k, true
}

// verifySignature returns 1 for a valid signature, 0 for an invalid one,
// or a negative verifyUnsupported / verifyBadKey.
func (kc *keyCache) verifySignature(alg string, der, msg, sig []byte) int32 {
	a, ok := signatureAlgs[alg]
	if !ok {
		return verifyUnsupported
	}
	pub, ok := kc.parsedKey(der)
	if !ok {
		return verifyBadKey
	}
	var digest []byte
	if a.hash != 0 {
		h := a.hash.New()
		h.Write(msg)
		digest = h.Sum(nil)
	}
	valid := false
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch a.kind {
		case 'r':
			valid = rsa.VerifyPKCS1v15(k, a.hash, digest, sig) == nil
		case 'p':
			valid = rsa.VerifyPSS(k, a.hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		default:
			return verifyBadKey
		}
	case *ecdsa.PublicKey:
		if a.kind != 'e' || k.Curve != a.curve {
			return verifyBadKey
		}
		n := (a.curve.Params().BitSize + 7) / 8
		if len(sig) == 2*n {
			valid = ecdsa.Verify(k, digest, new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:]))
		}
	case ed25519.PublicKey:
		if a.kind != 'd' {
			return verifyBadKey
		}
		valid = ed25519.Verify(k, msg, sig)
	default:
		return verifyBadKey
	}
	if valid {
		return verifyValid
	}
	return verifyInvalid
}

// addCryptoImports adds relay.verify_signature to the host module.
func addCryptoImports(b wazero.HostModuleBuilder) wazero.HostModuleBuilder {
	i32 := api.ValueTypeI32
	return b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(hostVerifySignatureFn), []api.ValueType{i32, i32, i32, i32, i32, i32, i32, i32}, []api.ValueType{i32}).
		WithParameterNames("alg_ptr", "alg_len", "key_ptr", "key_len", "msg_ptr", "msg_len", "sig_ptr", "sig_len").
		Export(importVerifySignature)
}

// hostVerifySignatureFn implements relay.verify_signature(alg, key, msg,
// sig) -> i32, each argument a (ptr, len) pair.
func hostVerifySignatureFn(ctx context.Context, mod api.Module, stack []uint64) {
	p, _ := ctx.Value(pluginKey{}).(*loaded)
	if p == nil {
		code := int32(verifyBadArgs)
		stack[0] = uint64(uint32(code))
		return
	}
	var parts [4][]byte
	for i := range parts {
		b, ok := mod.Memory().Read(uint32(stack[2*i]), uint32(stack[2*i+1]))
		if !ok {
			code := int32(verifyBadArgs)
			stack[0] = uint64(uint32(code))
			return
		}
		parts[i] = b
	}
	stack[0] = uint64(uint32(p.host.keys.verifySignature(string(parts[0]), parts[1], parts[2], parts[3])))
}
