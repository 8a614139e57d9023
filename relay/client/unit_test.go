package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestEncodeMessage(t *testing.T) {
	tests := []struct {
		name   string
		fields any
		want   string
	}{
		{"no fields", nil, `{"channel":3,"cmd":"chat","to":-1}`},
		{"empty map", map[string]any{}, `{"channel":3,"cmd":"chat","to":-1}`},
		{"struct keeps order, ours last", struct {
			B string `json:"b"`
			A int    `json:"a"`
		}{"x", 1}, `{"b":"x","a":1,"channel":3,"cmd":"chat","to":-1}`},
		{"forged fields lose", map[string]any{"cmd": "evil", "to": 9}, `{"cmd":"evil","to":9,"channel":3,"cmd":"chat","to":-1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encodeMessage(3, -1, "chat", tt.fields)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
	if _, err := encodeMessage(3, -1, "chat", []int{1}); err == nil {
		t.Fatal("a JSON array as fields was accepted")
	}
}

func TestParseFrameToleratesAppFields(t *testing.T) {
	// A peer may send fields named like the relay's own ones, with any type.
	f, err := parseFrame([]byte(`{"channel":2,"success":true,"from":5,"cmd":"chat","id":"abc","info":7,"replayed":true,"text":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	if f.Channel != 2 || f.From != 5 || f.Cmd != "chat" {
		t.Fatalf("frame = %+v", f)
	}
	fields := f.messageFields()
	if string(fields["text"]) != `"hi"` || string(fields["id"]) != `"abc"` || len(fields) != 4 {
		t.Fatalf("fields = %v", fields)
	}
	if _, err := parseFrame([]byte(`[1,2]`)); err == nil {
		t.Fatal("a JSON array was accepted as a frame")
	}
}

func TestMemberExtraForms(t *testing.T) {
	for _, tt := range []struct {
		in      string
		nilWant bool
		n       int
	}{
		{`{"id":1,"auth":true,"mode":2,"extra":false}`, true, 0},
		{`{"id":1,"auth":false,"mode":0,"extra":[]}`, false, 0},
		{`{"id":1,"auth":false,"mode":0,"extra":{"name":"ann"}}`, false, 1},
	} {
		var m Member
		if err := json.Unmarshal([]byte(tt.in), &m); err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if (m.Extra == nil) != tt.nilWant || len(m.Extra) != tt.n || m.ID != 1 {
			t.Fatalf("%s: got %+v", tt.in, m)
		}
	}
}

func TestErrorCodeAndIs(t *testing.T) {
	err := error(&Error{Code: CodeAccessDenied, Message: "no"})
	wrapped := errors.Join(errors.New("ctx"), err)
	if ErrorCode(wrapped) != CodeAccessDenied {
		t.Fatalf("ErrorCode = %q", ErrorCode(wrapped))
	}
	if !errors.Is(wrapped, &Error{Code: CodeAccessDenied}) || errors.Is(wrapped, &Error{Code: CodeInvalidTo}) {
		t.Fatal("errors.Is does not compare codes")
	}
	if ErrorCode(errors.New("x")) != "" {
		t.Fatal("plain error has a code")
	}
}

func TestNewAPIURL(t *testing.T) {
	for in, want := range map[string]string{
		"ws://127.0.0.1:7328/":      "http://127.0.0.1:7328",
		"wss://relay.example/drc/":  "https://relay.example/drc",
		"http://127.0.0.1:7328?x=1": "http://127.0.0.1:7328",
	} {
		a, err := NewAPI(in, nil)
		if err != nil {
			t.Fatal(err)
		}
		if a.base != want {
			t.Fatalf("%s: base %s, want %s", in, a.base, want)
		}
	}
	if _, err := NewAPI("ftp://x", nil); err == nil {
		t.Fatal("ftp scheme accepted")
	}
}

func TestAPIErrorDecoding(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer sekrit" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"channel":0,"success":false,"error":"Access denied.","errorcode":"access_denied"}`))
			return
		}
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte(`<html>proxy down</html>`))
	}))
	defer srv.Close()
	a, _ := NewAPI(srv.URL, nil)
	_, err := a.Presence(context.Background(), "c", "p")
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeAccessDenied || e.HTTPStatus != 401 {
		t.Fatalf("err = %v", err)
	}
	a, _ = NewAPI(srv.URL, &APIOptions{Token: "sekrit"})
	_, err = a.Presence(context.Background(), "c", "p")
	if !errors.As(err, &e) || e.Code != "http_error" || e.HTTPStatus != 502 || !strings.Contains(e.Message, "proxy down") {
		t.Fatalf("err = %v", err)
	}
}

// scripted is a WebSocket peer that answers each request with the frames
// script returns, to test how the client routes replies. The end-to-end
// tests in relay/client_e2e_test.go run the same calls against the relay.
func scripted(t *testing.T, script func(req map[string]any) []string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			_, data, err := c.Read(r.Context())
			if err != nil {
				return
			}
			var req map[string]any
			_ = json.Unmarshal(data, &req)
			for _, out := range script(req) {
				if err := c.Write(r.Context(), websocket.MessageText, []byte(out)); err != nil {
					return
				}
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func TestReplyRouting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	url := scripted(t, func(req map[string]any) []string {
		switch req["cmd"] {
		case "JOIN":
			if req["channel"] == "bad" {
				return []string{`{"channel":0,"success":false,"error":"Access denied.","errorcode":"access_denied"}`}
			}
			return []string{
				`{"channel":4,"success":true,"cmd":"JOINED","from":0,"id":7,"info":{"auth":false,"mode":1,"extra":{"n":"me"}},"channelname":"room","protocol":"chat","clients":{"1":{"auth":true,"mode":2,"extra":false},"7":{"auth":false,"mode":1,"extra":{"n":"me"}}}}`,
				`{"channel":4,"success":true,"from":0,"cmd":"ready","url":"/r/1","replayed":true}`,
			}
		case "hello":
			// refused send, then an unrelated message
			return []string{
				`{"channel":4,"success":false,"error":"Invalid 'to'.","errorcode":"invalid_to"}`,
				`{"channel":4,"success":true,"from":1,"cmd":"hi","text":"there"}`,
			}
		case "LEAVE":
			return []string{`{"channel":4,"success":true,"cmd":"LEFT","from":0,"id":7}`}
		case "SET_EXTRA":
			// A refused earlier send's error arrives first; it is not
			// the answer to SET_EXTRA.
			return []string{
				`{"channel":4,"success":false,"error":"Invalid 'to'.","errorcode":"invalid_to"}`,
				`{"channel":4,"success":true,"cmd":"SET_EXTRA","from":0,"id":7,"extra":{"n":"new"}}`,
			}
		}
		return nil
	})
	c, err := Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	if _, err := c.Join(ctx, "bad", "chat", nil); ErrorCode(err) != CodeAccessDenied {
		t.Fatalf("join bad: %v", err)
	}
	ch, err := c.Join(ctx, "room", "chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Number != 4 || ch.Self.ID != 7 || ch.Self.Mode != SendToAuths || len(ch.Members) != 2 || c.ID() != 7 {
		t.Fatalf("channel = %+v", ch)
	}
	if ids := ch.Authorities(); len(ids) != 1 || ids[0] != 1 {
		t.Fatalf("authorities = %v", ids)
	}
	// The replayed message arrived right after JOINED, before we asked.
	m, err := c.WaitMessage(ctx, 4, "ready")
	if err != nil {
		t.Fatal(err)
	}
	if !m.Replayed || m.From != 0 || string(m.Fields["url"]) != `"/r/1"` {
		t.Fatalf("ready = %+v", m)
	}
	reply, err := c.Request(ctx, 4, 1, "hello", map[string]any{"x": 1}, "hi")
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Text string }
	if err := reply.Decode(&body); err != nil || body.Text != "there" {
		t.Fatalf("reply %s: %v", reply.Raw, err)
	}
	// The refusal of the send is an event.
	select {
	case ev := <-c.Events():
		e, ok := ev.(*ErrorEvent)
		if !ok || e.Err.Code != CodeInvalidTo || e.Err.Channel != 4 {
			t.Fatalf("event = %#v", ev)
		}
	case <-ctx.Done():
		t.Fatal("no error event")
	}
	if err := c.SetExtra(ctx, 4, 7, map[string]any{"n": "new"}); err != nil {
		t.Fatalf("set extra with a send's error in between: %v", err)
	}
	if got := c.Channel(4).Self.Extra["n"]; got != "new" {
		t.Fatalf("own extra %v", got)
	}
	if ev := <-c.Events(); ev.(*ErrorEvent).Err.Code != CodeInvalidTo {
		t.Fatalf("event %#v", ev)
	}
	if err := c.Leave(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if c.Channel(4) != nil {
		t.Fatal("channel still tracked after leave")
	}
	if err := c.Broadcast(ctx, 4, "x", nil); ErrorCode(err) != CodeInvalidChannel {
		t.Fatalf("broadcast after leave: %v", err)
	}
}

func TestContextCancellation(t *testing.T) {
	url := scripted(t, func(map[string]any) []string { return nil }) // never answers
	c, err := Dial(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Join(ctx, "room", "chat", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("join: %v", err)
	}
	if _, err := c.WaitMessage(ctx, 1, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait: %v", err)
	}
	// The connection survives a caller's deadline.
	if c.Err() != nil {
		t.Fatalf("connection ended: %v", c.Err())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Join(context.Background(), "room", "chat", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("join after close: %v", err)
	}
	if _, ok := <-c.Events(); ok {
		t.Fatal("events channel open after Close")
	}
}
