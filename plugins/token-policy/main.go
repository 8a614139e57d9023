// Command token-policy is a relay plugin (on-token-create) that decides
// which protocols may be granted, caps token lifetime, client mode and
// makeauth, and stamps each token's extra with an issuer and issue time.
// See README.md. Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package main

import sdk "github.com/relay-project/relay/plugin-sdk"

func main() {}

func init() {
	var p *policy
	sdk.HandleConfigure(func(cfg []byte) error {
		var err error
		p, err = newPolicy(cfg)
		return err
	})
	sdk.HandleTokenCreate(func(t *sdk.TokenRequest) (sdk.Verdict, error) { return p.check(t), nil })
}
