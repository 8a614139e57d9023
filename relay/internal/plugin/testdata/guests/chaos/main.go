// Command chaos is a test plugin whose behaviour is chosen by its input: the
// message cmd, the JOIN token or the GRANT extra's "do" field. It can pass,
// deny, drop, rewrite, loop forever, panic, exhaust memory, read a host file,
// open a socket or return an error. Its configuration {"tag": "..."} marks
// rewrites so tests can see the chain order.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	sdk "github.com/relay-project/relay/plugin-sdk"
)

var tag, target string

// sink keeps allocations reachable so the memory bomb really allocates.
var sink [][]byte

func main() {}

func init() {
	sdk.HandleConfigure(func(cfg []byte) error {
		if len(cfg) == 0 {
			return nil
		}
		var c struct {
			Tag    string `json:"tag"`
			Reject bool   `json:"reject"`
			Target string `json:"target"`
		}
		if err := json.Unmarshal(cfg, &c); err != nil {
			return err
		}
		if c.Reject {
			return errors.New("configuration says reject")
		}
		tag, target = c.Tag, c.Target
		return nil
	})
	sdk.HandleFilterMessage(filter)
	sdk.HandleAuthorizeJoin(join)
	sdk.HandleTokenCreate(token)
}

// misbehave runs the misbehaviour named what, if any.
func misbehave(what string) (sdk.Verdict, error, bool) {
	switch what {
	case "loop":
		for {
		}
	case "panic":
		var m map[string]int
		m["x"] = 1
	case "oom":
		for {
			sink = append(sink, make([]byte, 8<<20))
		}
	case "readfile":
		b, err := os.ReadFile("/etc/hostname")
		if err != nil {
			return sdk.Verdict{}, err, true
		}
		return sdk.Allow().WithBody([]byte(`{"leak":` + string(sdk.Quote(string(b))) + `}`)), nil, true
	case "socket":
		addr := target
		if addr == "" {
			addr = "127.0.0.1:1"
		}
		c, err := net.DialTimeout("tcp", addr, 50*time.Millisecond)
		if err != nil {
			return sdk.Verdict{}, err, true
		}
		c.Close()
		return sdk.Continue(), nil, true
	case "error":
		return sdk.Verdict{}, errors.New("asked to fail"), true
	case "sleep":
		time.Sleep(10 * time.Second)
		return sdk.Continue(), nil, true
	case "badcode":
		return sdk.Deny("Not A Code!", "bad"), nil, true
	}
	return sdk.Verdict{}, nil, false
}

func filter(m *sdk.Message) (sdk.Verdict, error) {
	if v, err, ok := misbehave(m.Cmd); ok {
		return v, err
	}
	switch m.Cmd {
	case "drop":
		return sdk.Drop(), nil
	case "log":
		fmt.Println("to stdout")
		fmt.Fprintln(os.Stderr, "to stderr")
		sdk.Warn("through the log import")
		return sdk.Continue(), nil
	case "deny":
		return sdk.Deny("chaos_denied", "chaos says no"), nil
	case "forge":
		return sdk.Continue().WithBody([]byte(`{"from":999,"channel":77,"cmd":"evil","to":3,"success":false,"text":"forged"}`)), nil
	case "badbody":
		return sdk.Continue().WithBody([]byte(`[1,2]`)), nil
	case "rewrite":
		text, _ := m.Body.String("text")
		trail, _ := m.Body.String("trail")
		e := m.Body.Edit().SetString("text", strings.ToUpper(text))
		if tag != "" {
			e.SetString("trail", trail+tag)
		}
		return sdk.Continue().WithBody(e.Bytes()), nil
	case "echo":
		// Report what the plugin saw, for tests of the envelope.
		seen := map[string]any{
			"channel": m.Channel.Name, "protocol": m.Channel.Protocol, "channel_id": m.Channel.ID,
			"sender": m.Sender.ID, "authority": m.Authority, "mode": m.Mode,
			"extra": json.RawMessage(orNull(m.Extra)), "to": m.To, "cmd": m.Cmd,
			"body": json.RawMessage(m.Body.Raw()), "fields": m.Body.Len(),
			"now_ok": time.Since(m.Now).Abs() < time.Minute && time.Since(sdk.Now()).Abs() < time.Minute,
			"now":    m.Now.UnixMilli(), "sdknow": sdk.Now().UnixMilli(), "guestnow": time.Now().UnixMilli(),
		}
		b, _ := json.Marshal(seen)
		return sdk.Continue().WithBody(b), nil
	}
	return sdk.Continue(), nil
}

func orNull(b []byte) []byte {
	if len(b) == 0 {
		return []byte("null")
	}
	return b
}

func join(j *sdk.Join) (sdk.Verdict, error) {
	if v, err, ok := misbehave(j.Token); ok {
		return v, err
	}
	switch j.Token {
	case "deny":
		return sdk.Deny("chaos_denied", "chaos says no to "+j.Channel.Name), nil
	case "allow":
		return sdk.Allow().WithMode(1).WithExtra([]byte(`{"by":"chaos","tag":` + string(sdk.Quote(tag)) + `}`)), nil
	case "auth":
		return sdk.Allow().WithAuthority(true), nil
	case "echo":
		b, _ := json.Marshal(map[string]any{
			"id": j.Client.ID, "addr": j.Client.Addr, "origin": j.Client.Origin,
			"channel": j.Channel.Name, "protocol": j.Channel.Protocol,
			"allowed": j.Allowed, "code": j.ErrorCode, "tag": tag,
		})
		return sdk.Allow().WithExtra(b), nil
	}
	return sdk.Continue(), nil
}

func token(t *sdk.TokenRequest) (sdk.Verdict, error) {
	var x struct {
		Do string `json:"do"`
	}
	_ = json.Unmarshal(t.Extra, &x)
	if v, err, ok := misbehave(x.Do); ok {
		return v, err
	}
	switch x.Do {
	case "deny":
		return sdk.Deny("chaos_denied", "no token"), nil
	case "stamp":
		b, _ := json.Marshal(map[string]any{"do": "stamp", "tag": tag, "mode_was": t.ClientMode, "makeauth": t.MakeAuth, "requester": t.Requester.ID})
		return sdk.Continue().WithExtra(b).WithClientMode(2).WithLifetime(5 * time.Second), nil
	}
	return sdk.Continue(), nil
}
