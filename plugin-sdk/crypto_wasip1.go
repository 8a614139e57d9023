//go:build wasip1

package sdk

import (
	"runtime"
	"unsafe"
)

//go:wasmimport relay verify_signature
func hostVerifySignature(alg string, keyPtr uint32, keyLen int32, msgPtr uint32, msgLen int32, sigPtr uint32, sigLen int32) int32

func addr(b []byte) uint32 {
	if len(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&b[0])))
}

// VerifySignature checks sig, a JWS signature (RFC 7518: for ECDSA the
// fixed-size r||s) made with algorithm alg over msg, against a public key
// in PKIX DER (as x509.MarshalPKIXPublicKey writes it). The host does the
// work natively: an RS256 verification costs tens of microseconds there and
// milliseconds inside the sandbox.
func VerifySignature(alg string, publicKeyDER, msg, sig []byte) (bool, error) {
	r := hostVerifySignature(alg, addr(publicKeyDER), int32(len(publicKeyDER)), addr(msg), int32(len(msg)), addr(sig), int32(len(sig)))
	// The slices must stay alive until the host has read them.
	runtime.KeepAlive(publicKeyDER)
	runtime.KeepAlive(msg)
	runtime.KeepAlive(sig)
	return verifyResult(r)
}
