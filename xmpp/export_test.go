package xmpp

import "github.com/presence-service/presence/core"

// Holds reports whether a component connection of app is claimed: a
// newcomer for app would be refused with conflict.
func (s *Server) Holds(app core.AppID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.byApp[app]
	return ok
}
