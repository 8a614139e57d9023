// Command chaos is a test plugin whose behaviour is chosen by its input: the
// message cmd, the JOIN token or the GRANT extra's "do" field. It can pass,
// deny, drop, rewrite, loop forever, panic, exhaust memory, read a host file,
// open a socket or return an error. Its configuration {"tag": "..."} marks
// rewrites so tests can see the chain order.
package main

import (
	"errors"
	"net"
	"os"
	"strconv"
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
		// The SDK's body reader doubles as a small JSON object reader, which
		// keeps this module free of encoding/json (smaller, faster to compile).
		c, err := sdk.NewBody(cfg)
		if err != nil {
			return err
		}
		if v, _ := c.Field("reject"); string(v) == "true" {
			return errors.New("configuration says reject")
		}
		tag, _ = c.String("tag")
		target, _ = c.String("target")
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
		// One allocation far over the memory cap: the Go runtime's
		// memory.grow fails at once and it dies with "out of memory".
		sink = append(sink, make([]byte, 1<<30))
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
		time.Sleep(5 * time.Second)
		return sdk.Continue(), nil, true
	case "slow":
		// A legitimate but slow plugin: it holds its instance for 50 ms.
		time.Sleep(50 * time.Millisecond)
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
		os.Stdout.WriteString("to stdout\n")
		os.Stderr.WriteString("to stderr\n")
		sdk.Warn("through the log import")
		return sdk.Continue(), nil
	case "deny":
		return sdk.Deny("chaos_denied", "chaos says no"), nil
	case "forge":
		return sdk.Continue().WithBody([]byte(`{"from":999,"channel":77,"cmd":"evil","to":3,"success":false,"text":"forged"}`)), nil
	case "badbody":
		return sdk.Continue().WithBody([]byte(`[1,2]`)), nil
	case "hugebody":
		// An 8 MB rewrite, far over any message size limit.
		return sdk.Continue().WithBody([]byte(`{"pad":"` + strings.Repeat("x", 8<<20) + `"}`)), nil
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
		nowOK := time.Since(m.Now).Abs() < time.Minute && time.Since(sdk.Now()).Abs() < time.Minute
		b := sdk.Body{}.Edit().
			SetString("channel", m.Channel.Name).SetString("protocol", m.Channel.Protocol).
			Set("channel_id", num(m.Channel.ID)).Set("sender", num(m.Sender.ID)).
			Set("authority", boolean(m.Authority)).Set("mode", num(int64(m.Mode))).
			Set("extra", orNull(m.Extra)).Set("to", num(m.To)).SetString("cmd", m.Cmd).
			Set("body", m.Body.Raw()).Set("fields", num(int64(m.Body.Len()))).
			Set("now_ok", boolean(nowOK)).Bytes()
		return sdk.Continue().WithBody(b), nil
	}
	return sdk.Continue(), nil
}

func num(n int64) []byte { return strconv.AppendInt(nil, n, 10) }

func boolean(b bool) []byte { return strconv.AppendBool(nil, b) }

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
	// A member whose extra says so is refused: how a test makes a repeated
	// JOIN (with the grant token the member holds) fail in the hook.
	if extra, err := sdk.NewBody(j.Extra); err == nil {
		if v, _ := extra.String("chaos"); v == "deny" {
			return sdk.Deny("chaos_denied", "chaos says no to this member"), nil
		}
	}
	switch j.Token {
	case "deny":
		return sdk.Deny("chaos_denied", "chaos says no to "+j.Channel.Name), nil
	case "allow":
		return sdk.Allow().WithMode(1).WithExtra([]byte(`{"by":"chaos","tag":` + string(sdk.Quote(tag)) + `}`)), nil
	case "auth":
		return sdk.Allow().WithAuthority(true), nil
	case "hugeextra":
		return sdk.Allow().WithExtra([]byte(`{"pad":"` + strings.Repeat("x", 8<<10) + `"}`)), nil
	case "echo":
		b := sdk.Body{}.Edit().
			SetString("addr", j.Client.Addr).Set("allowed", boolean(j.Allowed)).
			SetString("channel", j.Channel.Name).SetString("code", j.ErrorCode).
			Set("id", num(j.Client.ID)).SetString("origin", j.Client.Origin).
			SetString("protocol", j.Channel.Protocol).SetString("tag", tag).Bytes()
		return sdk.Allow().WithExtra(b), nil
	}
	return sdk.Continue(), nil
}

func token(t *sdk.TokenRequest) (sdk.Verdict, error) {
	extra, _ := sdk.NewBody(t.Extra)
	do, _ := extra.String("do")
	if v, err, ok := misbehave(do); ok {
		return v, err
	}
	switch do {
	case "deny":
		return sdk.Deny("chaos_denied", "no token"), nil
	case "stamp":
		b := sdk.Body{}.Edit().SetString("do", "stamp").Set("makeauth", boolean(t.MakeAuth)).
			Set("mode_was", num(int64(t.ClientMode))).Set("requester", num(t.Requester.ID)).SetString("tag", tag).Bytes()
		return sdk.Continue().WithExtra(b).WithClientMode(2).WithLifetime(5 * time.Second), nil
	case "forever":
		return sdk.Continue().WithLifetime(1000 * time.Hour), nil
	}
	return sdk.Continue(), nil
}
