package relay_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/internal/relaytest"
	"github.com/relay-project/relay/relay/protocol"
)

// badInput is one hostile or broken input and the relay's documented
// answer to it (PROTOCOL.md, "Bad input and the relay's answers").
type badInput struct {
	name string
	// as is who sends it: "member" (a guest joined to the channel with
	// mode 2, the default), "recvonly" (mode 0), "authsonly" (mode 1) or
	// "fresh" (connected, in no channel).
	as string
	// msg is sent as one text message; %CH% becomes the channel number.
	msg string
	// frames, when set, is sent instead of msg, byte for byte.
	frames func(ch int) []byte
	// run, when set, drives the attack itself instead.
	run func(t *testing.T, e *badEnv, c *rawConn)
	want
}

// want is an answer: an error frame with code (naming the channel when
// onChannel), a data frame containing reply, or a close with code close
// (-1: the connection is cut without a close frame). binary: the answer is
// a binary frame.
type want struct {
	code      protocol.Code
	onChannel bool
	reply     string
	close     int
	binary    bool
}

// badEnv is the relay the suite runs against, with the limits set low.
type badEnv struct {
	r      *relaytest.Relay
	minter *relaytest.Client // an authority that grants the attackers' tokens
	ch     int
}

// The suite's limits.
const (
	badMaxMessage = 4096
	badRate       = 50
	badBurst      = 20
	badUnfinished = 6000
	badMsgTimeout = 300 * time.Millisecond
	badJoinTimout = 300 * time.Millisecond
)

func text(s string) []byte { return frame(true, opText, []byte(s)) }

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func closePayload(code int, reason string) []byte {
	return append([]byte{byte(code >> 8), byte(code)}, reason...)
}

// padded returns a broadcast on channel ch of exactly n bytes.
func padded(ch, n int) []byte {
	head := fmt.Sprintf(`{"cmd":"PAD","channel":%d,"to":-1,"p":"`, ch)
	return text(head + strings.Repeat("a", n-len(head)-2) + `"}`)
}

var badInputs = []badInput{
	// Framing (RFC 6455): the WebSocket library's answers.
	{name: "unmasked frame", frames: func(int) []byte { return []byte{0x81, 2, '{', '}'} }, want: want{close: -1}},
	{name: "RSV1 without compression", frames: func(int) []byte { b := text(`{}`); b[0] |= 0x40; return b }, want: want{close: protocol.StatusProtocolError}},
	{name: "RSV2 set", frames: func(int) []byte { b := text(`{}`); b[0] |= 0x20; return b }, want: want{close: protocol.StatusProtocolError}},
	{name: "RSV3 set", frames: func(int) []byte { b := text(`{}`); b[0] |= 0x10; return b }, want: want{close: protocol.StatusProtocolError}},
	{name: "reserved data opcode", frames: func(int) []byte { return frame(true, 0x3, []byte(`{}`)) }, want: want{close: protocol.StatusProtocolError}},
	{name: "reserved control opcode", frames: func(int) []byte { return frame(true, 0xB, nil) }, want: want{close: protocol.StatusProtocolError}},
	{name: "continuation without a message", frames: func(int) []byte { return frame(true, opCont, []byte(`{}`)) }, want: want{close: protocol.StatusProtocolError}},
	{name: "new message inside a fragmented one", frames: func(int) []byte {
		return cat(frame(false, opText, []byte(`{"cmd"`)), text(`{}`))
	}, want: want{close: protocol.StatusProtocolError}},
	{name: "fragmented ping", frames: func(int) []byte { return frame(false, opPing, []byte("x")) }, want: want{close: protocol.StatusProtocolError}},
	{name: "ping over 125 bytes", frames: func(int) []byte { return frame(true, opPing, make([]byte, 126)) }, want: want{close: protocol.StatusProtocolError}},
	{name: "close with an invalid code", frames: func(int) []byte { return frame(true, opClose, closePayload(999, "")) }, want: want{close: protocol.StatusProtocolError}},
	{name: "close with a 1-byte payload", frames: func(int) []byte { return frame(true, opClose, []byte{3}) }, want: want{close: protocol.StatusProtocolError}},
	{name: "close 1000 is echoed", frames: func(int) []byte { return frame(true, opClose, closePayload(1000, "bye")) }, want: want{close: 1000}},
	{name: "ping is answered with pong", run: func(t *testing.T, e *badEnv, c *rawConn) {
		c.write(frame(true, opPing, []byte("hello")))
		for {
			op, p, err := c.readFrame(5 * time.Second)
			if err != nil {
				t.Fatalf("no pong: %v", err)
			}
			if op == opPong {
				if string(p) != "hello" {
					t.Fatalf("pong %q, want hello", p)
				}
				return
			}
		}
	}},
	{name: "unsolicited pong is ignored", frames: func(int) []byte { return cat(frame(true, opPong, []byte("x")), text(`{}`)) }, want: want{code: protocol.CodeMissingInvalidCmd}},
	{name: "ping between fragments", frames: func(int) []byte {
		return cat(frame(false, opText, []byte(`{"cmd"`)), frame(true, opPing, nil), frame(true, opCont, []byte(`:1}`)))
	}, want: want{code: protocol.CodeMissingInvalidCmd}},
	{name: "fragmented request is whole", frames: func(ch int) []byte {
		m := fmt.Sprintf(`{"cmd":"X","channel":%d,"to":-1,"frag":true}`, ch)
		return cat(frame(false, opText, []byte(m[:5])), frame(false, opCont, []byte(m[5:9])), frame(true, opCont, []byte(m[9:])))
	}, want: want{reply: `"cmd":"X","frag":true`}},
	{name: "64-bit length with the top bit set", frames: func(int) []byte {
		return []byte{0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}
	}, want: want{close: -1}},
	{name: "empty text message", msg: ``, want: want{code: protocol.CodeInvalidData}},
	{name: "binary request is answered in binary", frames: func(int) []byte { return frame(true, opBinary, []byte(`{}`)) }, want: want{code: protocol.CodeMissingInvalidCmd, binary: true}},
	{name: "invalid UTF-8", msg: "{\"cmd\":\"\xff\"}", want: want{code: protocol.CodeInvalidData}},

	// JSON.
	{name: "not JSON", msg: `hello`, want: want{code: protocol.CodeInvalidData}},
	{name: "array", msg: `[]`, want: want{code: protocol.CodeInvalidData}},
	{name: "string", msg: `"JOIN"`, want: want{code: protocol.CodeInvalidData}},
	{name: "number", msg: `42`, want: want{code: protocol.CodeInvalidData}},
	{name: "null", msg: `null`, want: want{code: protocol.CodeInvalidData}},
	{name: "truncated object", msg: `{"cmd":"JOIN","channel":`, want: want{code: protocol.CodeInvalidData}},
	{name: "trailing garbage", msg: `{"cmd":"X"} {}`, want: want{code: protocol.CodeInvalidData}},
	{name: "invalid escape", msg: `{"cmd":"\x"}`, want: want{code: protocol.CodeInvalidData}},
	{name: "byte order mark", msg: "\ufeff{}", want: want{code: protocol.CodeInvalidData}},
	{name: "deep nesting", msg: `{"cmd":"X","channel":%CH%,"to":-1,"a":` + strings.Repeat("[", 1500) + strings.Repeat("]", 1500) + `}`, want: want{reply: `"cmd":"X"`}},
	{name: "empty object", msg: `{}`, want: want{code: protocol.CodeMissingInvalidCmd}},
	{name: "cmd is a number", msg: `{"cmd":1}`, want: want{code: protocol.CodeMissingInvalidCmd}},
	{name: "cmd is null", msg: `{"cmd":null}`, want: want{code: protocol.CodeMissingInvalidCmd}},
	{name: "cmd is an array", msg: `{"cmd":["JOIN"]}`, want: want{code: protocol.CodeMissingInvalidCmd}},
	{name: "duplicate keys: the last wins", msg: `{"cmd":"JOIN","cmd":"LEAVE","channel":%CH%}`, want: want{reply: `"cmd":"LEFT"`}},

	// Reserved names.
	{name: "cmd GRANTED", msg: `{"cmd":"GRANTED","channel":%CH%}`, want: want{code: protocol.CodeMissingInvalidCmd}},
	{name: "cmd JOINED", msg: `{"cmd":"JOINED","channel":%CH%}`, want: want{code: protocol.CodeMissingInvalidCmd}},
	{name: "cmd LEFT", msg: `{"cmd":"LEFT","channel":%CH%}`, want: want{code: protocol.CodeMissingInvalidCmd}},
	{name: "forged from and success", msg: `{"cmd":"X","channel":%CH%,"to":-1,"from":0,"success":false,"forged":1}`, want: want{reply: `"success":true,"from":%ID%,"cmd":"X","forged":1`}},

	// Field types and values.
	{name: "GRANT by a guest", msg: `{"cmd":"GRANT","channel":"c","protocol":"p","clientmode":2,"extra":{}}`, want: want{code: protocol.CodeAccessDenied}},
	{name: "GRANT channel a number", msg: `{"cmd":"GRANT","channel":5,"protocol":"p","clientmode":2,"extra":{}}`, want: want{code: protocol.CodeMissingInvalidChannel}},
	{name: "GRANT clientmode 3", msg: `{"cmd":"GRANT","channel":"c","protocol":"p","clientmode":3,"extra":{}}`, want: want{code: protocol.CodeMissingInvalidMode}},
	{name: "GRANT clientmode a word", msg: `{"cmd":"GRANT","channel":"c","protocol":"p","clientmode":"any","extra":{}}`, want: want{code: protocol.CodeMissingInvalidMode}},
	{name: "GRANT extra a string", msg: `{"cmd":"GRANT","channel":"c","protocol":"p","clientmode":2,"extra":"x"}`, want: want{code: protocol.CodeMissingInvalidExtra}},
	{name: "JOIN channel empty", msg: `{"cmd":"JOIN","channel":"","protocol":"p"}`, want: want{code: protocol.CodeMissingInvalidChannel}},
	{name: "JOIN channel 257 bytes", msg: `{"cmd":"JOIN","channel":"` + strings.Repeat("c", 257) + `","protocol":"p"}`, want: want{code: protocol.CodeMissingInvalidChannel}},
	{name: "JOIN channel an object", msg: `{"cmd":"JOIN","channel":{},"protocol":"p"}`, want: want{code: protocol.CodeMissingInvalidChannel}},
	{name: "JOIN protocol missing", msg: `{"cmd":"JOIN","channel":"c"}`, want: want{code: protocol.CodeMissingInvalidProtocol}},
	{name: "JOIN protocol 65 bytes", msg: `{"cmd":"JOIN","channel":"c","protocol":"` + strings.Repeat("p", 65) + `"}`, want: want{code: protocol.CodeMissingInvalidProtocol}},
	{name: "JOIN without a token", msg: `{"cmd":"JOIN","channel":"c","protocol":"p"}`, want: want{code: protocol.CodeAccessDenied}},
	{name: "JOIN with a made-up token", msg: `{"cmd":"JOIN","channel":"c","protocol":"p","token":"nope"}`, want: want{code: protocol.CodeAccessDenied}},
	{name: "JOIN with a numeric token", msg: `{"cmd":"JOIN","channel":"c","protocol":"p","token":12345}`, want: want{code: protocol.CodeAccessDenied}},
	{name: "SET_EXTRA by a guest", msg: `{"cmd":"SET_EXTRA","channel":%CH%,"id":1,"extra":{}}`, want: want{code: protocol.CodeAccessDenied}},
	{name: "LEAVE without channel", msg: `{"cmd":"LEAVE"}`, want: want{code: protocol.CodeMissingChannel}},
	{name: "LEAVE a channel not joined", msg: `{"cmd":"LEAVE","channel":999}`, want: want{code: protocol.CodeInvalidChannel}},
	{name: "LEAVE channel a word", msg: `{"cmd":"LEAVE","channel":"abc"}`, want: want{code: protocol.CodeInvalidChannel}},
	{name: "LEAVE channel 1e999", msg: `{"cmd":"LEAVE","channel":1e999}`, want: want{code: protocol.CodeInvalidChannel}},
	{name: "message without channel", msg: `{"cmd":"X","to":-1}`, want: want{code: protocol.CodeMissingChannel}},
	{name: "message channel negative", msg: `{"cmd":"X","channel":-1,"to":-1}`, want: want{code: protocol.CodeInvalidChannel}},
	{name: "message without to", msg: `{"cmd":"X","channel":%CH%}`, want: want{code: protocol.CodeMissingTo, onChannel: true}},
	{name: "message to a word", msg: `{"cmd":"X","channel":%CH%,"to":"all"}`, want: want{code: protocol.CodeInvalidTo, onChannel: true}},
	{name: "message to nobody", msg: `{"cmd":"X","channel":%CH%,"to":999999}`, want: want{code: protocol.CodeInvalidTo, onChannel: true}},
	{name: "message from a receive-only member", as: "recvonly", msg: `{"cmd":"X","channel":%CH%,"to":-1}`, want: want{code: protocol.CodeAccessDenied, onChannel: true}},
	{name: "mode 1 direct to a guest", as: "authsonly", msg: `{"cmd":"X","channel":%CH%,"to":%SUB%}`, want: want{code: protocol.CodeInvalidTo, onChannel: true}},

	// Sizes.
	{name: "message at the size limit", frames: func(ch int) []byte { return padded(ch, badMaxMessage) }, want: want{reply: `"cmd":"PAD"`}},
	{name: "message over the size limit", frames: func(ch int) []byte { return padded(ch, badMaxMessage+1) }, want: want{close: protocol.StatusMessageTooBig}},
	{name: "fragments over the size limit together", frames: func(int) []byte {
		half := make([]byte, badMaxMessage/2+1)
		return cat(frame(false, opText, half), frame(true, opCont, half))
	}, want: want{close: protocol.StatusMessageTooBig}},

	// Floods and slow input (this file's limits).
	{name: "message flood", run: func(t *testing.T, e *badEnv, c *rawConn) {
		var b []byte
		for range 3 * badBurst {
			b = append(b, text(`{"cmd":"X","channel":1,"to":999999}`)...)
		}
		c.write(b)
		if code, _ := c.closeCode(5 * time.Second); code != protocol.StatusPolicyViolation {
			t.Fatalf("closed with %d, want 1008", code)
		}
	}},
	{name: "rate_limited before the close", run: func(t *testing.T, e *badEnv, c *rawConn) {
		var b []byte
		for range badBurst + 5 {
			b = append(b, text(`{}`)...)
		}
		c.write(b)
		for range badBurst - 1 { // the JOIN took one token
			if got := c.next(); !strings.Contains(got, `"missing_invalid_cmd"`) {
				t.Fatalf("within the burst: %s", got)
			}
		}
		for {
			if got := c.next(); strings.Contains(got, `"errorcode":"rate_limited"`) {
				break
			} else if !strings.Contains(got, `"missing_invalid_cmd"`) {
				t.Fatalf("past the burst: %s", got)
			}
		}
	}},
	{name: "ping flood", frames: func(int) []byte {
		var b []byte
		for range 3 * badBurst {
			b = append(b, frame(true, opPing, []byte("p"))...)
		}
		return b
	}, want: want{close: protocol.StatusPolicyViolation}},
	{name: "invalid data flood", frames: func(int) []byte {
		var b []byte
		for range 3 * badBurst {
			b = append(b, text(`garbage`)...)
		}
		return b
	}, want: want{close: protocol.StatusPolicyViolation}},
	{name: "trickled message", run: func(t *testing.T, e *badEnv, c *rawConn) {
		start := time.Now() // before the write: the relay's clock starts when the frame arrives
		c.write(frame(false, opText, []byte(`{"cmd":`)))
		if code, _ := c.closeCode(5 * time.Second); code != protocol.StatusPolicyViolation {
			t.Fatalf("closed with %d, want 1008", code)
		}
		within(t, "closed", time.Since(start), badMsgTimeout, badMsgTimeout+2*time.Second)
	}},
	{name: "unfinished messages over the budget", run: func(t *testing.T, e *badEnv, c *rawConn) {
		other := rawDial(t, e.r, guestAddr)
		// Each under the budget (after the bytes read with its header),
		// both together over it.
		part := frame(false, opText, []byte(`{"cmd":"`+strings.Repeat("u", badUnfinished/2+700)))
		other.write(part)
		waitFor(t, func() bool { return gauge(t, e.r, "relay_unfinished_message_bytes") > 0 })
		c.write(part)
		if code, _ := c.closeCode(5 * time.Second); code != protocol.StatusTryAgainLater {
			t.Fatalf("closed with %d, want 1013", code)
		}
		other.nc.Close()
	}},
	{name: "never joins", as: "fresh", run: func(t *testing.T, e *badEnv, c *rawConn) {
		if code, reason := c.closeCode(5 * time.Second); code != protocol.StatusPolicyViolation || reason != protocol.CloseJoinTimeout.Text() {
			t.Fatalf("closed with %d %q, want 1008 join_timeout", code, reason)
		}
	}},

	// Limits other engineers add under issue 13 get their rows here: the
	// JOIN token size cap, an extra's size cap (GRANT, SET_EXTRA), members
	// per channel, the token store cap, connection caps per address and
	// in all, header size caps. Each row: the input, and the documented
	// errorcode or close code.
}

// TestBadInput sends every input of badInputs over its own connection and
// checks the documented answer; a healthy member on the same channel must
// receive every message published between the attacks, in order.
func TestBadInput(t *testing.T) {
	if len(badInputs) < 50 {
		t.Fatalf("%d cases, want at least 50", len(badInputs))
	}
	r := startRelay(t, func(c *relay.Config) {
		c.MaxMessageBytes = badMaxMessage
		c.OutboundQueueBytes = 1 << 20
		c.ClientRate = badRate
		c.ClientBurst = badBurst
		c.UnfinishedBytes = badUnfinished
		c.MessageTimeout = badMsgTimeout
		c.JoinTimeout = badJoinTimout
	})
	f := newFeed(t, r, "bad")
	e := &badEnv{r: r, minter: authority(t, r), ch: f.ch}
	subID := fmt.Sprint(r.Members("bad", "p")[1].ID)
	for _, in := range badInputs {
		t.Run(in.name, func(t *testing.T) {
			c := rawDial(t, r, guestAddr)
			defer c.nc.Close()
			myID := ""
			if in.as != "fresh" {
				mode := map[string]int{"": 2, "member": 2, "recvonly": 0, "authsonly": 1}[in.as]
				joined := c.joinRaw("bad", grant(t, e.minter, "bad", "p", mode, `{}`, false))
				var m map[string]any
				d := json.NewDecoder(strings.NewReader(joined))
				d.UseNumber() // ids are too large for %v of a float64
				d.Decode(&m)
				myID = id(m)
				c.ignore = func(f string) bool { return aboutOthers(f, myID) }
			}
			subst := strings.NewReplacer("%CH%", fmt.Sprint(e.ch), "%ID%", myID, "%SUB%", subID)
			switch {
			case in.run != nil:
				in.run(t, e, c)
			case in.frames != nil:
				c.write(in.frames(e.ch))
			default:
				c.send(subst.Replace(in.msg))
			}
			if in.run == nil {
				checkAnswer(t, c, in.want, e.ch, subst)
			}
			f.check(3)
		})
	}
	f.check(20)
}

// aboutOthers reports whether frame f is not an answer to client me: the
// feed's messages, and other members joining and leaving.
func aboutOthers(f, me string) bool {
	if strings.Contains(f, `"cmd":"SEQ"`) {
		return true
	}
	note := strings.Contains(f, `"cmd":"JOINED"`) || strings.Contains(f, `"cmd":"LEFT"`)
	return note && !strings.Contains(f, `"id":`+me+`}`) && !strings.Contains(f, `"id":`+me+`,`)
}

func checkAnswer(t *testing.T, c *rawConn, w want, ch int, subst *strings.Replacer) {
	t.Helper()
	if w.close != 0 {
		if code, reason := c.closeCode(5 * time.Second); code != w.close {
			t.Fatalf("closed with %d %q, want %d", code, reason, w.close)
		}
		return
	}
	var op byte
	var p []byte
	for {
		var err error
		op, p, err = c.readFrame(5 * time.Second)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		if op == opClose {
			t.Fatalf("closed: %q", p)
		}
		if op != opPing && op != opPong && (c.ignore == nil || !c.ignore(string(p))) {
			break
		}
	}
	if (op == opBinary) != w.binary {
		t.Fatalf("answer in opcode %d, want binary=%v", op, w.binary)
	}
	if w.reply != "" {
		if !strings.Contains(string(p), subst.Replace(w.reply)) {
			t.Fatalf("answer %s, want one containing %s", p, subst.Replace(w.reply))
		}
	} else {
		var m map[string]any
		if err := json.Unmarshal(p, &m); err != nil || m["success"] != false || m["errorcode"] != string(w.code) {
			t.Fatalf("answer %s, want errorcode %s", p, w.code)
		}
		wantCh := 0
		if w.onChannel {
			wantCh = ch
		}
		if fmt.Sprint(m["channel"]) != fmt.Sprint(wantCh) {
			t.Fatalf("answer %s names channel %v, want %d", p, m["channel"], wantCh)
		}
	}
	// The connection is still served.
	c.send(`{}`)
	if got := c.next(); !strings.Contains(got, `"errorcode":"missing_invalid_cmd"`) {
		t.Fatalf("after the answer: %s", got)
	}
}
