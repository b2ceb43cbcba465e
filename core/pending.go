package core

import (
	"context"
	"sync"
)

// pendingUsers remembers which users may have queued notifications, so
// that a connect asks the store for them only when there can be some:
// most connects are of users with none, and the query would be the
// costliest part of their connect. A user is marked when a notification is
// stored for them and unmarked when a query finds nothing; a generation
// per user keeps a store that races with that query from being forgotten.
type pendingUsers struct {
	shards [shardCount]struct {
		mu  sync.Mutex        // guards: gen
		gen map[string]uint64 // present: may have pending; value: bumps on each mark
	}
}

func (p *pendingUsers) shard(user string) *struct {
	mu  sync.Mutex
	gen map[string]uint64
} {
	return &p.shards[shardOf(user)]
}

func (p *pendingUsers) init() {
	for i := range p.shards {
		p.shards[i].gen = make(map[string]uint64)
	}
}

func (p *pendingUsers) mark(user string) {
	sh := p.shard(user)
	sh.mu.Lock()
	sh.gen[user]++
	sh.mu.Unlock()
}

// lookup says whether user may have pending notifications, and the
// generation to hand back to clear.
func (p *pendingUsers) lookup(user string) (uint64, bool) {
	sh := p.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	g, ok := sh.gen[user]
	return g, ok
}

// clear unmarks user unless a notification was stored since lookup.
func (p *pendingUsers) clear(user string, gen uint64) {
	sh := p.shard(user)
	sh.mu.Lock()
	if sh.gen[user] == gen {
		delete(sh.gen, user)
	}
	sh.mu.Unlock()
}

// loadPending marks every user the store has notifications for.
func (r *Router) loadPending(ctx context.Context) error {
	users, err := r.queues.UsersWithNotifications(ctx)
	if err != nil {
		return err
	}
	for _, u := range users {
		r.pending.mark(u)
	}
	return nil
}
