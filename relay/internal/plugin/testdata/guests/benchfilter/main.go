// Command benchfilter is the benchmarks' filter: it inspects cmd and one
// body field, the common shape of a message filter. It knows the messages
// of BenchmarkBroadcastFilter (cmd "chat", field "text") and of
// cmd/relay-bench (cmd "B", field "p"), and refuses anything else.
package main

import sdk "github.com/relay-project/relay/plugin-sdk"

func main() {}

// required maps each allowed cmd to the string field it must carry.
var required = map[string]string{"chat": "text", "B": "p"}

func init() {
	sdk.HandleFilterMessage(func(m *sdk.Message) (sdk.Verdict, error) {
		field, ok := required[m.Cmd]
		if !ok {
			return sdk.Deny("bad_cmd", "only chat and B"), nil
		}
		text, ok := m.Body.String(field)
		if !ok || len(text) > 500 {
			return sdk.Deny("bad_text", field+" missing or too long"), nil
		}
		return sdk.Continue(), nil
	})
}
