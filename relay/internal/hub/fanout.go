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
	return n
}

// SendTo implements Hub.
func (h *Memory) SendTo(ch *Channel, id int64, msg Message) bool {
	ch.mu.RLock()
	defer ch.mu.RUnlock()
	if m := ch.byID[id]; m != nil {
		m.r.Send(msg.Frame)
		return true
	}
	return false
}
