package hub

// The delivery hot path. A frame is encoded once by the caller and the same
// bytes are queued for every recipient; nothing here allocates per
// recipient, and Recipient.Send never blocks, so one slow reader cannot hold
// up a broadcast.

// Broadcast implements Hub.
func (h *Memory) Broadcast(ch *Channel, authOnly bool, msg Message) int {
	f := msg.Frame
	n := 0
	ch.mu.RLock()
	for _, m := range ch.members {
		if authOnly && !m.info.Auth {
			continue
		}
		if m.r.Send(f) {
			n++
		}
	}
	ch.mu.RUnlock()
	if h.Broker != nil {
		h.Broker.Announce(ch, Event{Kind: EventMessage, ID: msg.From, To: -1, AuthOnly: authOnly, Binary: f.Binary, Tail: f.Data[msg.Tail:]})
	}
	return n
}

// SendTo implements Hub.
func (h *Memory) SendTo(ch *Channel, id int64, msg Message) bool {
	ch.mu.RLock()
	m, remote := ch.byID[id], ch.remoteByID[id] != nil
	if m != nil {
		m.r.Send(msg.Frame)
	}
	ch.mu.RUnlock()
	if remote {
		// On the channel's subject like a broadcast, so it keeps its
		// place among the sender's other messages; only the target's
		// instance delivers it.
		h.Broker.Announce(ch, Event{Kind: EventMessage, ID: msg.From, To: id, Binary: msg.Binary, Tail: msg.Data[msg.Tail:]})
	}
	return m != nil || remote
}
