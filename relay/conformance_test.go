package relay_test

// The conformance suite: a real relay, real WebSocket clients over loopback,
// checked frame by frame against the DRC protocol page.

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/internal/relaytest"
	"github.com/relay-project/relay/relay/protocol"
)

func exactErr(channel int, code protocol.Code) string {
	return errFrame(channel, string(code), code.Text())
}

func TestInvalidDataAndCmd(t *testing.T) {
	r := startRelay(t, nil)
	c := authority(t, r)
	for _, tc := range []struct {
		name, payload string
		code          protocol.Code
	}{
		{"not json", `hello`, protocol.CodeInvalidData},
		{"array", `[1,2]`, protocol.CodeInvalidData},
		{"string", `"JOIN"`, protocol.CodeInvalidData},
		{"number", `7`, protocol.CodeInvalidData},
		{"truncated", `{"cmd":"JOIN"`, protocol.CodeInvalidData},
		{"two objects", `{"cmd":"x"}{"cmd":"y"}`, protocol.CodeInvalidData},
		{"bad utf-8", "{\"cmd\":\"\xff\"}", protocol.CodeInvalidData},
		{"no cmd", `{}`, protocol.CodeMissingInvalidCmd},
		{"null cmd", `{"cmd":null}`, protocol.CodeMissingInvalidCmd},
		{"numeric cmd", `{"cmd":5}`, protocol.CodeMissingInvalidCmd},
		{"GRANTED", `{"cmd":"GRANTED"}`, protocol.CodeMissingInvalidCmd},
		{"JOINED", `{"cmd":"JOINED"}`, protocol.CodeMissingInvalidCmd},
		{"LEFT", `{"cmd":"LEFT"}`, protocol.CodeMissingInvalidCmd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.Send(tc.payload)
			c.Expect(exactErr(0, tc.code))
		})
	}
	// The connection survived all of it.
	join(t, c, "still", "here", "")
}

func TestGrantChecksInOrder(t *testing.T) {
	r := startRelay(t, nil)
	a := authority(t, r)
	g := guest(t, r)
	long := strings.Repeat("n", 257)
	for _, tc := range []struct {
		name string
		c    *relaytest.Client
		req  string
		code protocol.Code
	}{
		{"everything wrong", a, `{"cmd":"GRANT"}`, protocol.CodeMissingInvalidChannel},
		{"empty channel", a, `{"cmd":"GRANT","channel":"","protocol":"p","clientmode":0,"extra":{}}`, protocol.CodeMissingInvalidChannel},
		{"channel too long", a, `{"cmd":"GRANT","channel":"` + long + `","protocol":"p","clientmode":0,"extra":{}}`, protocol.CodeMissingInvalidChannel},
		{"numeric channel", a, `{"cmd":"GRANT","channel":5,"protocol":"p","clientmode":0,"extra":{}}`, protocol.CodeMissingInvalidChannel},
		{"missing protocol", a, `{"cmd":"GRANT","channel":"c","clientmode":0,"extra":{}}`, protocol.CodeMissingInvalidProtocol},
		{"protocol too long", a, `{"cmd":"GRANT","channel":"c","protocol":"` + strings.Repeat("p", 65) + `","clientmode":0,"extra":{}}`, protocol.CodeMissingInvalidProtocol},
		{"missing clientmode", a, `{"cmd":"GRANT","channel":"c","protocol":"p","extra":{}}`, protocol.CodeMissingInvalidMode},
		{"clientmode 3", a, `{"cmd":"GRANT","channel":"c","protocol":"p","clientmode":3,"extra":{}}`, protocol.CodeMissingInvalidMode},
		{"clientmode -1", a, `{"cmd":"GRANT","channel":"c","protocol":"p","clientmode":-1,"extra":{}}`, protocol.CodeMissingInvalidMode},
		{"clientmode word", a, `{"cmd":"GRANT","channel":"c","protocol":"p","clientmode":"two","extra":{}}`, protocol.CodeMissingInvalidMode},
		{"clientmode bool", a, `{"cmd":"GRANT","channel":"c","protocol":"p","clientmode":true,"extra":{}}`, protocol.CodeMissingInvalidMode},
		{"missing extra", a, `{"cmd":"GRANT","channel":"c","protocol":"p","clientmode":0}`, protocol.CodeMissingInvalidExtra},
		{"string extra", a, `{"cmd":"GRANT","channel":"c","protocol":"p","clientmode":0,"extra":"x"}`, protocol.CodeMissingInvalidExtra},
		{"guest", g, `{"cmd":"GRANT","channel":"c","protocol":"p","clientmode":0,"extra":{}}`, protocol.CodeAccessDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.Send(tc.req)
			tc.c.Expect(exactErr(0, tc.code))
		})
	}
}

var grantedRE = regexp.MustCompile(`^\{"channel":0,"success":true,"cmd":"GRANTED","token":"([A-Za-z0-9_-]+)","channelname":"c\\"1","protocol":"p"\}$`)

func TestGrantedFrame(t *testing.T) {
	r := startRelay(t, nil)
	a := authority(t, r)
	// Numeric-string clientmode is accepted; the answer comes in the
	// request's frame type.
	a.SendBinary(`{"cmd":"GRANT","channel":"c\"1","protocol":"p","clientmode":"1","extra":[]}`)
	f := a.Next()
	if !f.Binary || !grantedRE.Match(f.Data) {
		t.Fatalf("GRANTED: binary=%v %s", f.Binary, f.Data)
	}
	// The token carries the normalised mode: the member has mode 1 (an
	// integer) and extra {} for the empty array.
	tok := grantedRE.FindSubmatch(f.Data)[1]
	g := guest(t, r)
	g.Send(fmt.Sprintf(`{"cmd":"JOIN","channel":"c\"1","protocol":"p","token":%q}`, tok))
	f = g.Next()
	gid := frameField(t, f.Data, "id")
	if want := fmt.Sprintf(`{"channel":1,"success":true,"cmd":"JOINED","from":0,"id":%s,"info":{"auth":false,"mode":1,"extra":{}},"channelname":"c\"1","protocol":"p","clients":{"%s":{"auth":false,"mode":1,"extra":{}}}}`, gid, gid); string(f.Data) != want {
		t.Fatalf("frame:\n got %s\nwant %s", f.Data, want)
	}
}

func TestJoinChecks(t *testing.T) {
	r := startRelay(t, nil)
	g := guest(t, r)
	g.Send(`{"cmd":"JOIN","protocol":"p"}`)
	g.Expect(exactErr(0, protocol.CodeMissingInvalidChannel))
	g.Send(`{"cmd":"JOIN","channel":"c"}`)
	g.Expect(exactErr(0, protocol.CodeMissingInvalidProtocol))
	g.Send(`{"cmd":"JOIN","channel":"c","protocol":"p"}`)
	g.Expect(exactErr(0, protocol.CodeAccessDenied))
	g.Send(`{"cmd":"JOIN","channel":"c","protocol":"p","token":"made-up"}`)
	g.Expect(exactErr(0, protocol.CodeAccessDenied))
	g.Send(`{"cmd":"JOIN","channel":"c","protocol":"p","token":12}`)
	g.Expect(exactErr(0, protocol.CodeAccessDenied))
}

// TestVisibility checks who hears of whom, for every combination of joiner
// and member modes.
func TestVisibility(t *testing.T) {
	r := startRelay(t, nil)
	a := authority(t, r)
	aid := id(join(t, a, "room", "chat", ""))
	members := map[int]*relaytest.Client{}
	ids := map[int]string{}
	for _, mode := range []int{0, 1, 2} {
		tok := grant(t, a, "room", "chat", mode, fmt.Sprintf(`{"m":%d}`, mode), false)
		c := guest(t, r)
		own := join(t, c, "room", "chat", tok)
		members[mode] = c
		ids[mode] = id(own)
		// The authority hears of every join.
		note := a.NextMap()
		if note["cmd"] != "JOINED" || id(note) != ids[mode] || note["clients"] != nil {
			t.Fatalf("authority: want JOINED of %s, got %v", ids[mode], note)
		}
		// Earlier guests hear of it only if they have mode 2.
		for m := 0; m < mode; m++ {
			if m == 2 {
				members[m].NextMap()
			}
		}
		// clients: modes 0 and 1 see only authorities and themselves.
		want := map[int]string{0: sortedIDs(aid, ids[0]), 1: sortedIDs(aid, ids[1]), 2: sortedIDs(aid, ids[0], ids[1], ids[2])}[mode]
		if got := clientIDs(own); got != want {
			t.Fatalf("mode %d joiner sees clients %s, want %s", mode, got, want)
		}
	}
	members[0].ExpectNone(100 * time.Millisecond)
	members[1].ExpectNone(10 * time.Millisecond)
	members[2].ExpectNone(10 * time.Millisecond)

	// A second authority's join is told to everyone.
	a2 := authority(t, r)
	own := join(t, a2, "room", "chat", "")
	if got := clientIDs(own); got != sortedIDs(aid, ids[0], ids[1], ids[2], id(own)) {
		t.Fatalf("authority sees %s", got)
	}
	for _, c := range []*relaytest.Client{a, members[0], members[1], members[2]} {
		m := c.NextMap()
		if m["cmd"] != "JOINED" || id(m) != id(own) {
			t.Fatalf("want JOINED of the authority, got %v", m)
		}
	}

	// A guest leaving: told to authorities and mode-2 members only.
	members[1].Send(`{"cmd":"LEAVE","channel":1}`)
	members[1].Expect(fmt.Sprintf(`{"channel":1,"success":true,"cmd":"LEFT","from":0,"id":%s}`, ids[1]))
	for _, c := range []*relaytest.Client{a, a2, members[2]} {
		c.Expect(fmt.Sprintf(`{"channel":1,"success":true,"cmd":"LEFT","from":0,"id":%s}`, ids[1]))
	}
	members[0].ExpectNone(100 * time.Millisecond)

	// An authority leaving: told to everyone.
	a2.Send(`{"cmd":"LEAVE","channel":"1"}`)
	left := fmt.Sprintf(`{"channel":1,"success":true,"cmd":"LEFT","from":0,"id":%s}`, id(own))
	for _, c := range []*relaytest.Client{a2, a, members[0], members[2]} {
		c.Expect(left)
	}
}

func TestMessages(t *testing.T) {
	r := startRelay(t, nil)
	a := authority(t, r)
	aID := id(join(t, a, "room", "chat", ""))
	recv := guest(t, r)
	recvID := id(join(t, recv, "room", "chat", grant(t, a, "room", "chat", 0, `{}`, false)))
	a.Next()
	toAuths := guest(t, r)
	toAuthsID := id(join(t, toAuths, "room", "chat", grant(t, a, "room", "chat", 1, `{}`, false)))
	a.Next()
	any := guest(t, r)
	anyID := id(join(t, any, "room", "chat", grant(t, a, "room", "chat", 2, `{}`, false)))
	a.Next()
	// expand puts the members' ids into a frame: $A, $R, $T and $Y stand
	// for a, recv, toAuths and any.
	expand := strings.NewReplacer("$A", aID, "$R", recvID, "$T", toAuthsID, "$Y", anyID).Replace

	t.Run("receive-only may not send", func(t *testing.T) {
		recv.Send(`{"cmd":"HI","channel":1,"to":-1}`)
		recv.Expect(exactErr(1, protocol.CodeAccessDenied))
	})
	t.Run("channel checks", func(t *testing.T) {
		any.Send(`{"cmd":"HI","to":-1}`)
		any.Expect(exactErr(0, protocol.CodeMissingChannel))
		any.Send(`{"cmd":"HI","channel":"x","to":-1}`)
		any.Expect(exactErr(0, protocol.CodeInvalidChannel))
		any.Send(`{"cmd":"HI","channel":99,"to":-1}`)
		any.Expect(exactErr(0, protocol.CodeInvalidChannel))
	})
	t.Run("to checks", func(t *testing.T) {
		any.Send(`{"cmd":"HI","channel":1}`)
		any.Expect(exactErr(1, protocol.CodeMissingTo))
		any.Send(`{"cmd":"HI","channel":1,"to":null}`)
		any.Expect(exactErr(1, protocol.CodeMissingTo))
		for _, to := range []string{`true`, `"abc"`, `99`, `{}`} {
			any.Send(`{"cmd":"HI","channel":1,"to":` + to + `}`)
			any.Expect(exactErr(1, protocol.CodeInvalidTo))
		}
		// Mode 1 may send directly to authorities only.
		toAuths.Send(expand(`{"cmd":"HI","channel":1,"to":$Y}`))
		toAuths.Expect(exactErr(1, protocol.CodeInvalidTo))
	})
	t.Run("broadcast reaches everyone, sender included", func(t *testing.T) {
		any.Send(`{"cmd":"HI","channel":"1","to":"-1","text":"hello","from":99,"success":false,"n":[1,{"a":2}]}`)
		want := expand(`{"channel":1,"success":true,"from":$Y,"cmd":"HI","text":"hello","n":[1,{"a":2}]}`)
		for _, c := range []*relaytest.Client{a, recv, toAuths, any} {
			c.Expect(want)
		}
	})
	t.Run("mode 1 broadcast reaches authorities only", func(t *testing.T) {
		toAuths.Send(`{"cmd":"HELP","channel":1,"to":-5}`)
		a.Expect(expand(`{"channel":1,"success":true,"from":$T,"cmd":"HELP"}`))
		for _, c := range []*relaytest.Client{recv, toAuths, any} {
			c.ExpectNone(50 * time.Millisecond)
		}
	})
	t.Run("direct", func(t *testing.T) {
		toAuths.Send(expand(`{"cmd":"Q","channel":1,"to":"$A"}`))
		a.Expect(expand(`{"channel":1,"success":true,"from":$T,"cmd":"Q"}`))
		a.Send(expand(`{"to":$R.0,"cmd":"A","channel":1,"x":"y"}`))
		recv.Expect(expand(`{"channel":1,"success":true,"from":$A,"cmd":"A","x":"y"}`))
		for _, c := range []*relaytest.Client{a, toAuths, any} {
			c.ExpectNone(50 * time.Millisecond)
		}
	})
	t.Run("binary in, binary out", func(t *testing.T) {
		any.SendBinary(expand(`{"cmd":"BIN","channel":1,"to":$A}`))
		f := a.Next()
		if !f.Binary || string(f.Data) != expand(`{"channel":1,"success":true,"from":$Y,"cmd":"BIN"}`) {
			t.Fatalf("binary=%v %s", f.Binary, f.Data)
		}
		any.SendBinary(`{"cmd":"BIN","channel":1}`)
		if f := any.Next(); !f.Binary || string(f.Data) != exactErr(1, protocol.CodeMissingTo) {
			t.Fatalf("error frame: binary=%v %s", f.Binary, f.Data)
		}
	})
	t.Run("duplicate keys: last value, first position", func(t *testing.T) {
		any.Send(expand(`{"cmd":"D","k":1,"channel":1,"to":$A,"k":2}`))
		a.Expect(expand(`{"channel":1,"success":true,"from":$Y,"cmd":"D","k":2}`))
	})
}

func TestSetExtra(t *testing.T) {
	r := startRelay(t, nil)
	a := authority(t, r)
	join(t, a, "room", "chat", "")
	watcher := guest(t, r) // mode 2
	join(t, watcher, "room", "chat", grant(t, a, "room", "chat", 2, `{}`, false))
	a.Next()
	quiet := guest(t, r) // mode 0
	quietID := id(join(t, quiet, "room", "chat", grant(t, a, "room", "chat", 0, `{"v":1}`, false)))
	a.Next()
	watcher.Next()
	q := strings.NewReplacer("$Q", quietID).Replace // $Q: quiet's id

	for _, tc := range []struct {
		c    *relaytest.Client
		req  string
		code protocol.Code
	}{
		{a, q(`{"cmd":"SET_EXTRA","id":$Q,"extra":{}}`), protocol.CodeMissingChannel},
		{a, q(`{"cmd":"SET_EXTRA","channel":"nope","id":$Q,"extra":{}}`), protocol.CodeInvalidChannel},
		{a, q(`{"cmd":"SET_EXTRA","channel":7,"id":$Q,"extra":{}}`), protocol.CodeInvalidChannel},
		{watcher, q(`{"cmd":"SET_EXTRA","channel":1,"id":$Q,"extra":{}}`), protocol.CodeAccessDenied},
		{a, `{"cmd":"SET_EXTRA","channel":1,"extra":{}}`, protocol.CodeInvalidID},
		{a, `{"cmd":"SET_EXTRA","channel":1,"id":42,"extra":{}}`, protocol.CodeInvalidID},
		{a, q(`{"cmd":"SET_EXTRA","channel":1,"id":$Q}`), protocol.CodeMissingInvalidExtra},
		{a, q(`{"cmd":"SET_EXTRA","channel":1,"id":$Q,"extra":5}`), protocol.CodeMissingInvalidExtra},
	} {
		tc.c.Send(tc.req)
		tc.c.Expect(exactErr(0, tc.code))
	}

	// Changing a mode-0 member: it, the authority and mode-2 members hear,
	// each with the target's id.
	a.Send(q(`{"cmd":"SET_EXTRA","channel":1,"id":"$Q","extra":{"v": 2}}`))
	want := q(`{"channel":1,"success":true,"cmd":"SET_EXTRA","from":0,"id":$Q,"extra":{"v":2}}`)
	for _, c := range []*relaytest.Client{a, watcher, quiet} {
		c.Expect(want)
	}
	// A later joiner with mode 2 sees the new extra.
	late := guest(t, r)
	own := join(t, late, "room", "chat", grant(t, a, "room", "chat", 2, `{}`, false))
	if got := fmt.Sprint(own["clients"].(map[string]any)[quietID]); got != "map[auth:false extra:map[v:2] mode:0]" {
		t.Fatalf("late joiner sees member %s as %s", quietID, got)
	}
}

func TestLeaveAndRejoin(t *testing.T) {
	r := startRelay(t, nil)
	a := authority(t, r)
	a.Send(`{"cmd":"LEAVE"}`)
	a.Expect(exactErr(0, protocol.CodeMissingChannel))
	a.Send(`{"cmd":"LEAVE","channel":1}`)
	a.Expect(exactErr(0, protocol.CodeInvalidChannel))
	aid := id(join(t, a, "c", "p", ""))
	// JOIN of a channel already joined is accepted and answered again.
	own := join(t, a, "c", "p", "")
	if own["channel"].(interface{ String() string }).String() != "1" {
		t.Fatalf("rejoin changed the channel: %v", own)
	}
	// A binary LEAVE is answered in binary; other members get text.
	other := authority(t, r)
	join(t, other, "c", "p", "")
	a.Next()
	a.SendBinary(`{"cmd":"LEAVE","channel":1}`)
	left := `{"channel":1,"success":true,"cmd":"LEFT","from":0,"id":` + aid + `}`
	if f := a.Next(); !f.Binary || string(f.Data) != left {
		t.Fatalf("own LEFT: binary=%v %s", f.Binary, f.Data)
	}
	if f := other.Next(); f.Binary || string(f.Data) != left {
		t.Fatalf("other's LEFT: binary=%v %s", f.Binary, f.Data)
	}
	// After the last member leaves the channel is gone; the next JOIN
	// creates a new one with a new number.
	other.Send(`{"cmd":"LEAVE","channel":1}`)
	other.Next()
	if n := r.Channels(); n != 0 {
		t.Fatalf("%d channels left", n)
	}
	own = join(t, a, "c", "p", "")
	if fmt.Sprint(own["channel"]) != "2" {
		t.Fatalf("channel numbers are not reused: got %v", own["channel"])
	}
}

func TestTokenLifecycle(t *testing.T) {
	clk := newClock()
	r := startRelay(t, func(c *relay.Config) {
		c.Now = clk.Now
		c.TokenTTL = 30 * time.Second
		c.TokenRejoin = 30 * time.Second
	})
	a := authority(t, r)

	t.Run("expires exactly at its deadline", func(t *testing.T) {
		early := grant(t, a, "c", "p", 0, `{}`, false)
		late := grant(t, a, "c", "p", 0, `{}`, false)
		clk.Advance(30*time.Second - time.Nanosecond)
		join(t, guest(t, r), "c", "p", early)
		clk.Advance(time.Nanosecond)
		g := guest(t, r)
		g.Send(fmt.Sprintf(`{"cmd":"JOIN","channel":"c","protocol":"p","token":%q}`, late))
		g.Expect(exactErr(0, protocol.CodeAccessDenied))
	})
	t.Run("consumed by JOIN, valid again after LEAVE, then expires", func(t *testing.T) {
		tok := grant(t, a, "d", "p", 0, `{}`, false)
		first := guest(t, r)
		own := join(t, first, "d", "p", tok)
		second := guest(t, r)
		second.Send(fmt.Sprintf(`{"cmd":"JOIN","channel":"d","protocol":"p","token":%q}`, tok))
		second.Expect(exactErr(0, protocol.CodeAccessDenied))
		// Held for as long as the member stays, however long.
		clk.Advance(time.Hour)
		first.Send(fmt.Sprintf(`{"cmd":"LEAVE","channel":%v}`, own["channel"]))
		first.Next()
		clk.Advance(29 * time.Second)
		join(t, second, "d", "p", tok)
		// Released on disconnect too.
		second.Conn().CloseNow()
		waitFor(t, func() bool { return clients(r) == 2 })
		clk.Advance(30 * time.Second)
		third := guest(t, r)
		third.Send(fmt.Sprintf(`{"cmd":"JOIN","channel":"d","protocol":"p","token":%q}`, tok))
		third.Expect(exactErr(0, protocol.CodeAccessDenied))
	})
	t.Run("bound to its channel, not consumed by a wrong one", func(t *testing.T) {
		tok := grant(t, a, "e", "p", 0, `{}`, false)
		g := guest(t, r)
		g.Send(fmt.Sprintf(`{"cmd":"JOIN","channel":"e","protocol":"other","token":%q}`, tok))
		g.Expect(exactErr(0, protocol.CodeAccessDenied))
		g.Send(fmt.Sprintf(`{"cmd":"JOIN","channel":"f","protocol":"p","token":%q}`, tok))
		g.Expect(exactErr(0, protocol.CodeAccessDenied))
		join(t, g, "e", "p", tok)
	})
	t.Run("makeauth: an authority of the channel that may not GRANT", func(t *testing.T) {
		tok := grant(t, a, "m", "p", 0, `{"role":"mod"}`, true)
		g := guest(t, r)
		own := join(t, g, "m", "p", tok)
		if got := fmt.Sprint(own["info"]); got != "map[auth:true extra:map[role:mod] mode:2]" {
			t.Fatalf("makeauth member info %s", got)
		}
		g.Send(`{"cmd":"GRANT","channel":"m","protocol":"p","clientmode":0,"extra":{}}`)
		g.Expect(exactErr(0, protocol.CodeAccessDenied))
		// It may SET_EXTRA, as an authority of the channel.
		g.Send(fmt.Sprintf(`{"cmd":"SET_EXTRA","channel":%v,"id":%s,"extra":{"x":1}}`, own["channel"], id(own)))
		if m := g.NextMap(); m["cmd"] != "SET_EXTRA" {
			t.Fatalf("SET_EXTRA by makeauth member: %v", m)
		}
		// makeauth counts only as the literal true.
		tok2 := grant(t, a, "m", "p", 0, `{}`, false)
		a.Send(`{"cmd":"GRANT","channel":"m","protocol":"p","clientmode":0,"extra":{},"makeauth":"true"}`)
		tok3, _ := a.NextMap()["token"].(string)
		for _, tk := range []string{tok2, tok3} {
			own := join(t, guest(t, r), "m", "p", tk)
			if own["info"].(map[string]any)["auth"] != false {
				t.Fatalf("non-literal makeauth gave authority: %v", own["info"])
			}
		}
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestChannelLimit(t *testing.T) {
	r := startRelay(t, nil)
	a := authority(t, r)
	g := guest(t, r)
	for i := range 256 {
		join(t, g, fmt.Sprintf("c%d", i), "p", grant(t, a, fmt.Sprintf("c%d", i), "p", 0, `{}`, false))
	}
	tok := grant(t, a, "one-more", "p", 0, `{}`, false)
	g.Send(fmt.Sprintf(`{"cmd":"JOIN","channel":"one-more","protocol":"p","token":%q}`, tok))
	g.Expect(exactErr(0, protocol.CodeMaxChannelLimitReached))
	// The limit comes before the token check.
	g.Send(`{"cmd":"JOIN","channel":"x","protocol":"p"}`)
	g.Expect(exactErr(0, protocol.CodeMaxChannelLimitReached))
	// Re-joining a channel it is in does not count twice.
	join(t, g, "c0", "p", grant(t, a, "c0", "p", 0, `{}`, false))
	// The refused token was not consumed: after leaving one channel it works.
	g.Send(`{"cmd":"LEAVE","channel":2}`)
	g.Next()
	join(t, g, "one-more", "p", tok)
	// Authorities are not limited.
	for i := range 300 {
		join(t, a, fmt.Sprintf("a%d", i), "p", "")
	}
}

func TestStaticTokensAndIPRules(t *testing.T) {
	r := startRelay(t, func(c *relay.Config) {
		c.AuthorityIPs = []string{"127.0.0.1", "127.0.0.3#ops|jobs", "127.0.1.0/24"}
		c.AuthorityTokens = []string{"all-secret", "chat-secret#chat"}
	})
	dial := func(addr string) *relaytest.Client {
		return relaytest.Dial(t, r.URL, &relaytest.DialOptions{Local: addr})
	}
	isAuth := func(c *relaytest.Client, proto, extra string) bool {
		t.Helper()
		c.Send(`{"cmd":"JOIN","channel":"c","protocol":"` + proto + `"` + extra + `}`)
		m := c.NextMap()
		if m["cmd"] == "JOINED" {
			return m["info"].(map[string]any)["auth"] == true
		}
		if m["errorcode"] != "access_denied" {
			t.Fatalf("unexpected %v", m)
		}
		return false
	}
	for _, tc := range []struct {
		addr, proto, extra string
		want               bool
	}{
		{"127.0.0.1", "any", "", true},
		{"127.0.0.1", "any", `,"ipauth":false`, false},
		{"127.0.0.1", "any", `,"ipauth":0`, true},
		{"127.0.0.3", "ops", "", true},
		{"127.0.0.3", "jobs", "", true},
		{"127.0.0.3", "chat", "", false},
		{"127.0.1.77", "chat", "", true},
		{"127.0.0.2", "chat", "", false},
		{"127.0.0.2", "chat", `,"token":"all-secret"`, true},
		{"127.0.0.2", "x", `,"token":"all-secret"`, true},
		{"127.0.0.2", "chat", `,"token":"chat-secret"`, true},
		{"127.0.0.2", "x", `,"token":"chat-secret"`, false},
		{"127.0.0.2", "x", `,"token":"all-secret2"`, false},
		{"127.0.0.1", "any", `,"ipauth":false,"token":"all-secret"`, true},
	} {
		t.Run(tc.addr+"/"+tc.proto+tc.extra, func(t *testing.T) {
			if got := isAuth(dial(tc.addr), tc.proto, tc.extra); got != tc.want {
				t.Fatalf("authority = %v, want %v", got, tc.want)
			}
		})
	}
	// A static token lets a client at any address GRANT, for its protocols.
	g := dial("127.0.0.2")
	g.Send(`{"cmd":"GRANT","channel":"c","protocol":"chat","clientmode":0,"extra":{},"token":"chat-secret"}`)
	if m := g.NextMap(); m["cmd"] != "GRANTED" {
		t.Fatalf("GRANT with static token: %v", m)
	}
	g.Send(`{"cmd":"GRANT","channel":"c","protocol":"ops","clientmode":0,"extra":{},"token":"chat-secret"}`)
	g.Expect(exactErr(0, protocol.CodeAccessDenied))
}
