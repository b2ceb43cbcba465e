package ws

import (
	"testing"
	"time"
)

// Requests begun within a second share one context; each ends between
// notifyTimeout and a second more after its request began.
func TestSharedDeadline(t *testing.T) {
	var d sharedDeadline
	t0 := time.Now()
	tries := []time.Duration{0, 999 * time.Millisecond, time.Second, 1500 * time.Millisecond}
	first := d.context(t0)
	for i, at := range tries {
		begun := t0.Add(at)
		ctx := d.context(begun)
		dl, ok := ctx.Deadline()
		if !ok || dl.Before(begun.Add(notifyTimeout)) || dl.After(begun.Add(notifyTimeout+time.Second)) {
			t.Fatalf("try %d: deadline %v for a request begun at %v", i, dl.Sub(t0), at)
		}
		if shared := ctx == first; shared != (at < time.Second) {
			t.Fatalf("try %d at %v: shares the first context: %v", i, at, shared)
		}
	}
}
