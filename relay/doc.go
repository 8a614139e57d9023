// Package relay is a WebSocket relay that speaks the Data Relay Center (DRC)
// protocol (see protocol/PROTOCOL.md).
//
// # Entry points
//
//   - LoadConfig reads the configuration from the environment;
//     DefaultConfig is what you get with no variables set.
//   - New builds a Server from a Config. A Server is an http.Handler: every
//     request that asks for a WebSocket upgrade becomes a client;
//     GET /healthz and GET /readyz answer probes, /metrics serves
//     Prometheus metrics, /sdk/ the browser SDK (package jsclient) and /v1/
//     the HTTP API (httpapi.go, internal/httpapi).
//   - Server.Publish and Server.MintToken do what the HTTP API does, for
//     programs that embed the relay.
//   - Server.Shutdown drains: readiness turns 503, queues are flushed and
//     every client is closed with 1012.
//   - PrecompilePlugins fills a plugin compilation cache for an image.
//
// # One message, socket to fan-out
//
// A client's read loop (conn.go, conn.readLoop) reads one WebSocket message
// into a pooled buffer, refusing it past RELAY_MAX_MESSAGE_BYTES with close
// code 1009. conn.handle (session.go) decodes it with protocol.Decode,
// which keeps the request's fields in order and as raw JSON, and dispatches
// on cmd. For an application message, conn.message checks the sender's
// membership and mode and the `to` field, runs the filter-message plugins
// when any are configured (plugins.go), encodes the delivered frame once
// (protocol.AppendMessageHead, then AppendMessageTail: the tail, from
// "cmd" on, names no channel number) and hands it to the hub
// (internal/hub, fanout.go) as a hub.Message. The hub queues the same
// bytes on every recipient with Recipient.Send, which never blocks: it
// appends to the recipient's queue (or disconnects it as a slow consumer
// past its byte cap) and starts the recipient's writer if none runs. The writer (conn.writeLoop) takes the
// whole queue, frames every message itself into a corked socket (the
// WebSocket library keeps the handshake, reads and control frames), and
// uncorks: one write system call per batch.
//
// In cluster mode (RELAY_NATS_URL, internal/cluster) the hub also hands the
// message to its Broker: after queuing it locally, Broadcast (or SendTo for
// a member of another instance) announces it on the channel's NATS subject
// as an envelope carrying the frame's tail (from "cmd" on, no channel
// number), the sender and a sequence number. Every instance subscribed to
// the channel has one dispatcher goroutine that reads the envelopes in
// order, checks the sequence (a gap closes the channel's local members with
// 1013), puts its own channel number and the sender in front of the tail
// once, and queues the same bytes on its local recipients (hub.Deliver), as
// above. A JOIN writes the member's record to JetStream KV before
// announcing it, on the same subject, before the joiner can send anything:
// so every instance hears a member's JOINED before its messages, and its
// messages before its LEFT.
//
// # Hooks
//
// JOIN, GRANT and application messages (and the HTTP API's token and
// publish) call the WASM plugin hooks through the helpers in plugins.go
// after the relay's own decision; internal/plugin runs them on wazero with
// pooled instances, a deadline and a memory cap. With no plugins
// configured each helper is one nil check.
//
// # One JOIN
//
// conn.join (session.go) reads top to bottom: who joins (a permanent
// authority, or a grant token claimed from token.Store: a refusal is
// access_denied, a store that cannot answer is unavailable), the channel
// cap, the authorize-join hook, then hub.Join, which queues the joiner's
// JOINED, the channel's retained messages (the Replay) and the others'
// JOINED under the channel's lock, so no other frame of the channel falls
// in between. Every refusal after the claim releases the token.
//
// # Seams
//
// Grant tokens are behind token.Store and retained messages behind
// retain.Store; the in-memory implementations serve one process, and
// internal/cluster's (NATS JetStream KV) a cluster. Channel membership is
// hub.Memory in every deployment, with a hub.Broker under it in a cluster:
// see RATIONALE.md, "Why are tokens and retained messages behind
// interfaces, and membership not?". Client ids come from a
// clientid.Source: blocks from the clock in one process, from a shared
// counter in a cluster.
package relay
