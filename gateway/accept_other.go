//go:build !linux || 386

package gateway

// acceptLoop is the portable accept loop, used where accept_linux.go's
// cheaper refusal path is not built (other systems, and linux/386, whose
// socket calls go through socketcall).
func (s *Server) acceptLoop() {
	defer s.wg.Done()
	s.acceptConns()
}
