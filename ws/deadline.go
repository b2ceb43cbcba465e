package ws

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// notifyTimeout bounds how long a notification POST waits for the store.
const notifyTimeout = 30 * time.Second

// sharedDeadline hands the front door's notification requests their
// deadline: a context that ends notifyTimeout after the request began, or
// up to a second later, one context a second shared by every request
// begun in it. Those requests have no parent context that could end them
// early, so nothing is lost by sharing; a context.WithTimeout per request
// was four of a single-item POST's allocations and a timer set and
// stopped each time.
type sharedDeadline struct {
	mu  sync.Mutex // serialises renewals
	cur atomic.Pointer[deadlineCtx]
}

type deadlineCtx struct {
	ctx context.Context
	// cancel is never called: the context ends at its deadline, and that
	// frees it (its parent is Background).
	cancel context.CancelFunc
	until  time.Time // handed out to requests begun before then
}

// context returns the deadline for a request begun at now.
func (d *sharedDeadline) context(now time.Time) context.Context {
	if c := d.cur.Load(); c != nil && now.Before(c.until) {
		return c.ctx
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.cur.Load(); c != nil && now.Before(c.until) {
		return c.ctx
	}
	ctx, cancel := context.WithDeadline(context.Background(), now.Add(notifyTimeout+time.Second))
	d.cur.Store(&deadlineCtx{ctx: ctx, cancel: cancel, until: now.Add(time.Second)})
	return ctx
}
