// Package hub keeps channel membership and delivers frames to members.
//
// A channel is identified by (name, protocol), exists while it has members,
// and is numbered from 1 upward without reuse. The hub applies the protocol's
// visibility rules when it tells members about joins, leaves and extra
// changes, so every path that changes membership (WebSocket, HTTP API, the
// cluster broker) tells the same members the same things.
//
// The jobs are one file each: the channel index and numbering (memory.go),
// a channel's members and the visibility rule (channel.go), fan-out
// (fanout.go), the link to the other instances of a cluster (broker.go).
//
// # Lock order
//
// This is the only place the relay's lock order is written down.
//
//  1. Memory.mu guards the channel index. It is never held with any other
//     lock: Join finds or creates the channel under Memory.mu, releases it,
//     then locks the channel; a channel emptied by Leave is marked dead
//     under its own lock and then removed from the index, and a Join that
//     finds a dead channel retries.
//  2. Channel.mu guards one channel's members. Under it the hub calls
//     Recipient.Send and the Join's Replay, which take only leaf locks:
//  3. leaf locks, never held while taking another: a connection's queue
//     lock (relay conn.mu), the retained store's lock (retain.Memory), and
//     in a cluster a channel link's retained cache lock (cluster link.rmu),
//     the broker's subscription index (cluster Broker.mu) and the node's
//     live set (cluster Node.mu).
//
// The cluster's own lock, a channel link's publish lock (cluster link.mu,
// which keeps sequence numbers in publish order), is taken only with no hub
// lock held: Memory calls Broker.Announce after unlocking.
//
// Nothing waits on the network under Memory.mu or Channel.mu: Send never
// blocks, and a Replay reads memory only. A cluster's I/O (subscribing,
// member records, requests to another instance) happens before a channel
// is locked or after it is unlocked, and nats.Conn.Publish only appends to
// the connection's buffer.
package hub
