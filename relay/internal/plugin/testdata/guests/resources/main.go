// Command resources is a test guest for the resource and crypto imports:
// its authorize-join reads the token as "<op> <args>" and denies with an
// errorcode saying how the call went and a message carrying the result.
package main

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"unsafe"

	sdk "github.com/relay-project/relay/plugin-sdk"
)

func main() {}

//go:wasmimport relay resource
func rawResource(name string, dst uint32, dstCap int32) int64

func code(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, sdk.ErrResourceNotAllowed):
		return "not_allowed"
	case errors.Is(err, sdk.ErrResourceUnavailable):
		return "unavailable"
	}
	return "other"
}

func init() {
	sdk.HandleConfigure(func(cfg []byte) error {
		// A configuration naming a URL must be able to read it at once.
		if len(cfg) > 0 {
			if _, err := sdk.ReadResource(string(cfg)); err != nil && !errors.Is(err, sdk.ErrResourceUnavailable) {
				return err
			}
		}
		return nil
	})
	sdk.HandleAuthorizeJoin(func(j *sdk.Join) (sdk.Verdict, error) {
		op, url, _ := strings.Cut(j.Token, " ")
		switch op {
		case "read":
			r, err := sdk.ReadResource(url)
			return sdk.Deny(code(err), strconv.Itoa(int(r.Version))+":"+string(r.Data)), nil
		case "version":
			v, err := sdk.ResourceVersion(url)
			return sdk.Deny(code(err), strconv.Itoa(int(v))), nil
		case "refresh":
			now, err := sdk.RefreshResource(url)
			return sdk.Deny(code(err), strconv.FormatBool(now)), nil
		case "outside":
			// A destination outside memory is refused, not written.
			return sdk.Deny("ok", strconv.FormatInt(rawResource(url, 0xfffffff0, 64), 10)), nil
		case "verify":
			// verify <alg> <key> <msg> <sig>, each of the last three in
			// base64url; split on single spaces, so any of them may be empty.
			f := strings.Split(url, " ")
			var b [3][]byte
			for i := range b {
				b[i], _ = base64.RawURLEncoding.DecodeString(f[i+1])
			}
			ok, err := sdk.VerifySignature(f[0], b[0], b[1], b[2])
			switch {
			case errors.Is(err, sdk.ErrSignatureAlg):
				return sdk.Deny("bad_alg", ""), nil
			case errors.Is(err, sdk.ErrSignatureKey):
				return sdk.Deny("bad_key", ""), nil
			}
			return sdk.Deny("ok", strconv.FormatBool(ok)), nil
		case "small":
			// A destination too small gets the version and length only.
			var b [4]byte
			r := rawResource(url, uint32(uintptr(unsafe.Pointer(&b[0]))), 4)
			return sdk.Deny("ok", strconv.FormatInt(r&0xffffffff, 10)+":"+strconv.Quote(string(b[:]))), nil
		}
		return sdk.Continue(), nil
	})
}
