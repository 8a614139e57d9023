package sdk

import "errors"

// Errors of VerifySignature.
var (
	// ErrSignatureAlg: the algorithm is not one the host verifies.
	ErrSignatureAlg = errors.New("signature algorithm not supported (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)")
	// ErrSignatureKey: the key is not PKIX DER of a public key that fits the
	// algorithm (an RSA key must have 2048 to 8192 bits).
	ErrSignatureKey = errors.New("public key unusable for this algorithm")
)

func verifyResult(r int32) (bool, error) {
	switch r {
	case verifyValid:
		return true, nil
	case verifyInvalid:
		return false, nil
	case verifyUnsupported:
		return false, ErrSignatureAlg
	case verifyBadKey:
		return false, ErrSignatureKey
	}
	return false, errors.New("verify_signature: bad arguments")
}
