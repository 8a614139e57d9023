// Command mainhandlers is the plugin-author mistake of registering handlers
// in main, which a -buildmode=c-shared module never runs: it loads with no
// hook, and the relay must refuse it.
package main

import sdk "github.com/relay-project/relay/plugin-sdk"

func main() {
	sdk.HandleFilterMessage(func(*sdk.Message) (sdk.Verdict, error) {
		return sdk.Deny("never", "main never runs"), nil
	})
}
