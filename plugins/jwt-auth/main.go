// Command jwt-auth is a relay plugin (authorize-join) that lets a client
// join with a JSON Web Token minted by the application, instead of a grant
// token fetched with GRANT. See README.md for its configuration and error
// codes. Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package main

import sdk "github.com/relay-project/relay/plugin-sdk"

func main() {}

func init() {
	var a *authorizer
	sdk.HandleConfigure(func(cfg []byte) error {
		var err error
		a, err = newAuthorizer(cfg)
		return err
	})
	sdk.HandleAuthorizeJoin(func(j *sdk.Join) (sdk.Verdict, error) { return a.authorize(j), nil })
}
