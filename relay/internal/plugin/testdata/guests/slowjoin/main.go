// Command slowjoin is a test plugin with an authorize-join hook only: a
// JOIN whose token is a duration ("5s") holds its instance that long, the
// shape of a plugin that waits on something slow; any other JOIN passes at
// once. Messages never reach it, so a test can tell a relay that waits for
// the plugin from one that waits for nothing.
package main

import (
	"time"

	sdk "github.com/relay-project/relay/plugin-sdk"
)

func main() {}

func init() {
	sdk.HandleAuthorizeJoin(func(j *sdk.Join) (sdk.Verdict, error) {
		if d, err := time.ParseDuration(j.Token); err == nil {
			time.Sleep(d)
		}
		return sdk.Continue(), nil
	})
}
