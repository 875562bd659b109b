package natsplane

import "github.com/nats-io/nats-server/v2/server"

// Routez returns the running server's routes, for tests that check how
// the cluster is wired.
func (s *Server) Routez() (*server.Routez, error) {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	return srv.Routez(nil)
}

// Options returns the nats-server options New would build from cfg.
func Options(cfg Config) (*server.Options, error) { return serverOptions(&cfg) }
