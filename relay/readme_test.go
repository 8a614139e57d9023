package relay_test

import (
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relay-project/relay/relay/internal/relaytest"
)

// TestReadmeWorkedExample runs the README's worked example literally: every
// "backend →" and "page →" frame is sent as printed (N replaced by the
// channel number the relay gave, the token by the one it minted), and every
// "←" frame must be what that party receives next, client ids, channel
// numbers and tokens aside. Both parties connect from this machine with the
// default configuration, as a reader trying it would.
func TestReadmeWorkedExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	start := strings.Index(section, "## Worked example")
	if start < 0 {
		t.Fatal("README has no worked example")
	}
	section = section[start:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	steps := regexp.MustCompile(`(?m)^\s+(backend|page) (→|←) (\{.*\})\s*$`).FindAllStringSubmatch(section, -1)
	if len(steps) < 6 {
		t.Fatalf("the worked example has %d frames; the test reads lines like `backend → {...}`", len(steps))
	}
	if !strings.Contains(section, "ipauth: false") {
		t.Error("the page's JavaScript does not send ipauth: false, as its JOIN frame does")
	}

	r := relaytest.Start(t, relaytest.Config(t), "") // defaults: this machine's addresses are authorities
	parties := map[string]*relaytest.Client{
		"backend": relaytest.Dial(t, r.URL, &relaytest.DialOptions{Local: "127.0.0.1"}),
		"page": relaytest.Dial(t, r.URL, &relaytest.DialOptions{Local: "127.0.0.1",
			Header: http.Header{"Origin": {"http://localhost:8080"}}}),
	}
	tokenField := regexp.MustCompile(`"token":"[^"]*"`)
	readmeIDs, realIDs := newRenamer("client"), newRenamer("client")
	readmeChans, realChans := newRenamer("channel"), newRenamer("channel")
	channel, token := "", ""
	for i, step := range steps {
		who, dir, frame := step[1], step[2], step[3]
		c := parties[who]
		if dir == "→" {
			if strings.Contains(frame, `"channel":N`) {
				if channel == "" {
					t.Fatalf("frame %d uses N before any JOINED gave a channel number: %s", i+1, frame)
				}
				frame = strings.ReplaceAll(frame, `"channel":N`, `"channel":`+channel)
			}
			if token != "" {
				frame = tokenField.ReplaceAllString(frame, `"token":"`+token+`"`)
			}
			c.Send(frame)
			continue
		}
		f := c.Next()
		got := string(f.Data)
		m := f.Map(t)
		if m["cmd"] == "JOINED" && channel == "" {
			channel = m["channel"].(interface{ String() string }).String()
		}
		if m["cmd"] == "GRANTED" {
			token, _ = m["token"].(string)
		}
		norm := func(s string, ids, chans *renamer) string {
			s = tokenField.ReplaceAllString(s, `"token":"TOKEN"`)
			return chans.apply(ids.apply(s))
		}
		if a, b := norm(got, realIDs, realChans), norm(frame, readmeIDs, readmeChans); a != b {
			t.Fatalf("README frame %d (%s %s) differs from the relay's answer:\n relay  %s\n README %s", i+1, who, dir, got, frame)
		}
	}
	for _, c := range parties {
		c.ExpectNone(50 * time.Millisecond)
	}
}

// renamer replaces the numbers of one kind (client ids or channel numbers)
// in frames by names given in order of first appearance, so two transcripts
// compare equal when their numbers differ but are used alike.
type renamer struct {
	kind  string
	names map[string]string
	where *regexp.Regexp
}

func newRenamer(kind string) *renamer {
	where := regexp.MustCompile(`("id":|"from":|")([1-9][0-9]*)("?)`) // id, from, a clients key
	if kind == "channel" {
		where = regexp.MustCompile(`("channel":)([1-9][0-9]*)()`)
	}
	return &renamer{kind: kind, names: map[string]string{}, where: where}
}

func (r *renamer) apply(frame string) string {
	return r.where.ReplaceAllStringFunc(frame, func(m string) string {
		sub := r.where.FindStringSubmatch(m)
		if sub[1] == `"` && sub[3] != `"` {
			return m // a number inside a string, not a clients key
		}
		name, ok := r.names[sub[2]]
		if !ok {
			name = r.kind + strconv.Itoa(len(r.names)+1)
			r.names[sub[2]] = name
		}
		return sub[1] + name + sub[3]
	})
}
