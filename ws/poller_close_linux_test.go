//go:build linux

package ws

import (
	"log/slog"
	"testing"
	"time"
)

// Closing the poller wakes the goroutine parked in the runtime's
// netpoller on the epoll set, and the readers end with it: a server that
// is closed leaves nothing running.
func TestPollerCloseEndsCollector(t *testing.T) {
	p, err := newPoller(slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	p.close()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatal("poller still collecting 5 s after close")
	}
}
