package ws

import (
	"testing"
	"time"
)

// SetAnswerTimeout shortens how long the front door waits for the store
// to answer a notification POST, for the rest of t.
func SetAnswerTimeout(t testing.TB, d time.Duration) {
	old := answerTimeout.Swap(int64(d))
	t.Cleanup(func() { answerTimeout.Store(old) })
}

// SetPostIdleTimeout shortens how long a notification POST connection may
// wait between requests, for the rest of t.
func SetPostIdleTimeout(t testing.TB, d time.Duration) {
	old := postIdleTimeout.Swap(int64(d))
	t.Cleanup(func() { postIdleTimeout.Store(old) })
}

// PostsCollected is how many notification POSTs the poller's collectors
// served on parked connections.
func (s *Server) PostsCollected() int64 { return s.posts.collected.Load() }

// PostConns is how many notification POST connections the front door
// serves.
func (s *Server) PostConns() int {
	s.posts.mu.Lock()
	defer s.posts.mu.Unlock()
	return len(s.posts.conns)
}

// PostsBusy is how many notification POST connections have a request in
// flight (its answer not yet given).
func (s *Server) PostsBusy() int64 { return s.posts.busyCount() }

// SetHeadTimeout shortens how long a connection may take to send a
// request head, for the rest of t.
func SetHeadTimeout(t testing.TB, d time.Duration) {
	old := headTimeout.Swap(int64(d))
	t.Cleanup(func() { headTimeout.Store(old) })
}
