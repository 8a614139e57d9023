package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// APIOptions configures an API. A nil *APIOptions means all defaults.
type APIOptions struct {
	// Token is a static authority token, sent as "Authorization: Bearer".
	// Default: none (the relay then decides by the caller's address).
	Token string
	// HTTPClient sends the requests. Default: http.DefaultClient.
	HTTPClient *http.Client
}

// API calls the relay's HTTP API: minting grant tokens, publishing to a
// channel and reading its presence without holding a WebSocket open. It is
// safe for concurrent use.
type API struct {
	base  string
	token string
	hc    *http.Client
}

// NewAPI returns an API for the relay at baseURL: "http://host:7328" (a
// ws:// or wss:// URL is turned into http:// or https://; a path is kept
// as a prefix, for relays mounted under one).
func NewAPI(baseURL string, opts *APIOptions) (*API, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("relay api url: %w", err)
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	case "http", "https":
	default:
		return nil, fmt.Errorf("relay api url %q: scheme must be http, https, ws or wss", baseURL)
	}
	u.RawQuery, u.Fragment = "", ""
	a := &API{base: strings.TrimRight(u.String(), "/"), hc: http.DefaultClient}
	if opts != nil {
		a.token = opts.Token
		if opts.HTTPClient != nil {
			a.hc = opts.HTTPClient
		}
	}
	return a, nil
}

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	// Channel and Protocol name the channel the token is for.
	Channel  string `json:"channel"`
	Protocol string `json:"protocol"`
	// ClientMode is the mode of the member that joins with the token.
	ClientMode Mode `json:"clientmode"`
	// Extra is attached to the member that joins with the token.
	Extra map[string]any `json:"extra"`
	// MakeAuth makes the member that joins with the token an authority.
	MakeAuth bool `json:"makeauth,omitempty"`
	// Lifetime, when positive, shortens the token's lifetime (seconds);
	// it cannot exceed the relay's grant lifetime.
	Lifetime int `json:"lifetime,omitempty"`
}

// TokenResponse is the answer to POST /v1/tokens.
type TokenResponse struct {
	Token       string    `json:"token"`
	ChannelName string    `json:"channelname"`
	Protocol    string    `json:"protocol"`
	ClientMode  Mode      `json:"clientmode"`
	MakeAuth    bool      `json:"makeauth"`
	Expires     time.Time `json:"expires"`
	Lifetime    int       `json:"lifetime"`
}

// PublishRequest is the body of POST /v1/publish.
type PublishRequest struct {
	// Channel and Protocol name the channel.
	Channel  string `json:"channel"`
	Protocol string `json:"protocol"`
	// Cmd is the message's application command.
	Cmd string `json:"cmd"`
	// To is the member id to send to; nil broadcasts.
	To *int64 `json:"to,omitempty"`
	// Fields become the delivered message's other fields.
	Fields map[string]any `json:"fields,omitempty"`
	// Retain, when positive, keeps the message for that many seconds and
	// replays it to members who join meanwhile (broadcasts only).
	Retain int `json:"retain,omitempty"`
}

// PublishResponse is the answer to POST /v1/publish.
type PublishResponse struct {
	// Channel is the channel's number, 0 when it has no members.
	Channel int64 `json:"channel"`
	// Delivered counts the members the message was sent to.
	Delivered int `json:"delivered"`
	// Dropped reports that a filter-message plugin dropped the message:
	// it reached no one and was not retained.
	Dropped bool `json:"dropped"`
	// Retained reports whether the message was kept for late joiners,
	// until RetainedUntil.
	Retained      bool       `json:"retained"`
	RetainedUntil *time.Time `json:"retained_until,omitempty"`
}

// Presence is the answer to GET /v1/presence.
type Presence struct {
	// Channel is the channel's number, 0 when it has no members.
	Channel     int64    `json:"channel"`
	ChannelName string   `json:"channelname"`
	Protocol    string   `json:"protocol"`
	Members     []Member `json:"members"`
}

// CreateToken mints a grant token through the HTTP API.
func (a *API) CreateToken(ctx context.Context, req TokenRequest) (*TokenResponse, error) {
	if req.Extra == nil {
		req.Extra = map[string]any{}
	}
	var out TokenResponse
	if err := a.do(ctx, http.MethodPost, "/v1/tokens", req, &out); err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}
	return &out, nil
}

// Publish sends a message to a channel as the relay itself (from 0).
func (a *API) Publish(ctx context.Context, req PublishRequest) (*PublishResponse, error) {
	var out PublishResponse
	if err := a.do(ctx, http.MethodPost, "/v1/publish", req, &out); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	return &out, nil
}

// Presence lists the members of the channel (name, protocol).
func (a *API) Presence(ctx context.Context, name, protocol string) (*Presence, error) {
	q := url.Values{"channel": {name}, "protocol": {protocol}}
	var out Presence
	if err := a.do(ctx, http.MethodGet, "/v1/presence?"+q.Encode(), nil, &out); err != nil {
		return nil, fmt.Errorf("presence: %w", err)
	}
	return &out, nil
}

func (a *API) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Channel   int64  `json:"channel"`
			Error     string `json:"error"`
			ErrorCode string `json:"errorcode"`
		}
		if json.Unmarshal(data, &e) != nil || e.ErrorCode == "" {
			return &Error{Code: "http_error", Message: strings.TrimSpace(resp.Status + " " + string(truncate(data, 200))), HTTPStatus: resp.StatusCode}
		}
		return &Error{Code: Code(e.ErrorCode), Message: e.Error, Channel: e.Channel, HTTPStatus: resp.StatusCode}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
