// Package client is a Go client for the relay (and for any Data Relay
// Center server): the WebSocket protocol for services that stay connected,
// and the relay's HTTP API for those that should not.
//
// # WebSocket
//
// Dial connects; the Client's methods cover what DRC's PHP SDK does:
//
//	c, err := client.Dial(ctx, "ws://127.0.0.1:7328/", nil)
//	grant, err := c.CreateToken(ctx, "room", "chat", &client.TokenOptions{ClientMode: client.SendToAny})
//	ch, err := c.Join(ctx, "room", "chat", nil)          // the channel and its members
//	err = c.SetExtra(ctx, ch.Number, id, map[string]any{"name": "ann"})
//	err = c.Send(ctx, ch.Number, id, "hello", fields)   // direct
//	err = c.Broadcast(ctx, ch.Number, "news", fields)
//	reply, err := c.Request(ctx, ch.Number, id, "ping", nil, "pong")
//	err = c.Leave(ctx, ch.Number)
//
// Everything the relay sends that no call waits for arrives on Events as
// a *JoinedEvent, *LeftEvent, *ExtraEvent, *MessageEvent or *ErrorEvent;
// WaitFor and WaitMessage wait for one specific event with a context
// deadline. The Client keeps its own view of its channels' members
// (Channel, Channels, RandomAuthority), updated from those events.
//
// # HTTP API
//
// API wraps the relay's HTTP API: CreateToken, Publish (optionally
// retained for members who join later) and Presence.
//
// # Errors
//
// Errors the relay reports are *Error values carrying the protocol's
// errorcode as a Code (and the HTTP status for the API): use ErrorCode,
// errors.As, or errors.Is(err, &client.Error{Code: client.CodeAccessDenied}).
// Context errors and ErrClosed are returned wrapped as they are.
//
// The Client and the API are safe for concurrent use.
package client
