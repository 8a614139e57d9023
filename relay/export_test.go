package relay

// CrashCluster cuts s's NATS connection as a kill -9 would: no goodbye,
// its lease left to expire. Its WebSocket clients stay connected.
func (s *Server) CrashCluster() {
	s.broker.Close()
	s.node.Crash()
}
