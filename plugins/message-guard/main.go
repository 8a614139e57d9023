// Command message-guard is a relay plugin (filter-message) that enforces,
// per protocol, which commands may be sent, how large a body may be, which
// fields it must have, and which fields are redacted before delivery. See
// README.md. Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package main

import sdk "github.com/relay-project/relay/plugin-sdk"

func main() {}

func init() {
	var g *guard
	sdk.HandleConfigure(func(cfg []byte) error {
		var err error
		g, err = newGuard(cfg)
		return err
	})
	sdk.HandleFilterMessage(func(m *sdk.Message) (sdk.Verdict, error) { return g.filter(m), nil })
}
