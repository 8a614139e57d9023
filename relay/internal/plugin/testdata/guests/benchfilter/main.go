// Command benchfilter is the benchmark's filter: it inspects cmd and one
// body field, the common shape of a message filter.
package main

import sdk "github.com/relay-project/relay/plugin-sdk"

func main() {}

func init() {
	sdk.HandleFilterMessage(func(m *sdk.Message) (sdk.Verdict, error) {
		if m.Cmd != "chat" {
			return sdk.Deny("bad_cmd", "only chat"), nil
		}
		text, ok := m.Body.String("text")
		if !ok || len(text) > 500 {
			return sdk.Deny("bad_text", "text missing or too long"), nil
		}
		return sdk.Continue(), nil
	})
}
