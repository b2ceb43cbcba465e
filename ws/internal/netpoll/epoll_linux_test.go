//go:build linux

package netpoll

import (
	"log/slog"
	"testing"
	"time"
)

// Closing the poller wakes the goroutines waiting in the runtime's
// netpoller on the epoll sets, and the readers end with them: a server
// that is closed leaves nothing running.
func TestPollerCloseEndsItsGoroutines(t *testing.T) {
	p, err := NewPoller(slog.Default(), Options{MaxMessage: 4096, MaxQueue: 256})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatal("poller still serving 5 s after Close")
	}
}
