// Package relay is a WebSocket relay that speaks the Data Relay Center (DRC)
// protocol (see protocol/PROTOCOL.md).
//
// # Entry points
//
//   - LoadConfig reads the configuration from the environment;
//     DefaultConfig is what you get with no variables set.
//   - New builds a Server from a Config. A Server is an http.Handler: every
//     request that asks for a WebSocket upgrade becomes a client;
//     GET /healthz and GET /readyz answer probes.
//   - Server.Shutdown drains: readiness turns 503, queues are flushed and
//     every client is closed with 1012.
//
// # One message, socket to fan-out
//
// A client's read loop (conn.go, client.readLoop) reads one WebSocket message
// into a pooled buffer, refusing it past RELAY_MAX_MESSAGE_BYTES with close
// code 1009. client.handle (session.go) decodes it with protocol.Decode,
// which keeps the request's fields in order and as raw JSON, and dispatches
// on cmd. For an application message, client.message checks the sender's
// membership and mode and the `to` field, encodes the delivered frame once
// with protocol.AppendMessage, and hands it to the hub (internal/hub,
// fanout.go). The hub queues the same bytes on every recipient with
// Recipient.Send, which never blocks: it appends to the recipient's queue
// (or disconnects it as a slow consumer past its byte cap) and starts the
// recipient's writer if none runs. The writer (client.writeLoop) takes the
// whole queue, writes every frame through the WebSocket library into a
// corked socket, and uncorks: one write system call per batch.
//
// # Seams
//
// Channel membership is behind hub.Hub and grant tokens behind token.Store;
// the in-memory implementations serve one process, and a clustered
// deployment replaces them without touching the protocol code.
package relay
