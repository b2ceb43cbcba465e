package routertest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

// Clock is a router's clock (core.Options.Now) that moves only when the
// test says.
type Clock struct {
	mu  sync.Mutex // guards: now
	now time.Time
}

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// ActiveApp registers, verifies and activates an app through r.
func ActiveApp(t testing.TB, r *core.Router) core.AppID {
	t.Helper()
	ctx := context.Background()
	reg, err := r.RegisterApp(ctx, "dev@beer.example", "beer.example", "Beer", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.MarkVerified(ctx, reg.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.ActivateApp(ctx, reg.ID); err != nil {
		t.Fatal(err)
	}
	return reg.ID
}
