package core_test

import (
	"slices"
	"testing"

	"github.com/presence-service/presence/core"
)

// After a burst, an outbox that has each update taken on its own (the
// writer keeps up) still coalesces and keeps the order of first pushes.
func TestOutboxAfterBurst(t *testing.T) {
	o := core.NewStatusOutbox()
	for i := range 100 {
		o.Push(core.StatusUpdate{PUID: string(rune('a' + i%26)), Status: core.Online, Message: "burst"})
	}
	if got := len(o.Take(nil)); got != 26 {
		t.Fatalf("burst: took %d, want 26 (one per PUID)", got)
	}
	for round := range 3 {
		o.Push(core.StatusUpdate{PUID: "b", Status: core.Online})
		o.Push(core.StatusUpdate{PUID: "z", Status: core.Online})
		o.Push(core.StatusUpdate{PUID: "b", Status: core.Unavailable, Message: "newest"})
		got := o.Take(nil)
		want := []core.StatusUpdate{
			{PUID: "b", Status: core.Unavailable, Message: "newest"},
			{PUID: "z", Status: core.Online},
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: took %+v, want %+v", round, got, want)
		}
		if n := o.Len(); n != 0 {
			t.Fatalf("round %d: %d still pending after Take", round, n)
		}
	}
}
