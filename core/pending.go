package core

import (
	"context"
	"sync"
	"time"
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

// pushMissedAttempts and pushMissedRetry bound how long pushMissed tries
// a store that is itself failing over (the NATS server that dropped this
// node may have led the stream too).
const (
	pushMissedAttempts = 10
	pushMissedRetry    = time.Second
)

// pushMissed pushes what this node may have missed while its bus link
// was down. A stored batch is announced on the bus (PublishNotifications)
// and an announcement sent meanwhile never reaches this node, so the
// devices it holds would get those items only on their next connect,
// not at once (PROTOCOL §10). It asks the store which users have
// notifications waiting and fills each of their sessions here; an item a
// session was already given is not pushed again, so a failed round is
// simply made again. Called on CachesLost.
func (r *Router) pushMissed() {
	var err error
	for range pushMissedAttempts {
		if r.shuttingDown.Load() {
			return
		}
		if err = r.pushMissedOnce(); err == nil {
			return
		}
		time.Sleep(pushMissedRetry)
	}
	if !r.shuttingDown.Load() {
		r.log.Error("after a bus reconnect: cannot push the notifications stored meanwhile; devices get them on their next connect", "err", err)
	}
}

// pushMissedOnce is one round of pushMissed; it returns the first error.
func (r *Router) pushMissedOnce() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*pushMissedRetry)
	users, err := r.queues.UsersWithNotifications(ctx)
	cancel()
	if err != nil {
		return err
	}
	var first error
	for _, user := range users {
		r.pending.mark(user)
		u := r.lockUser(user, false)
		if u == nil {
			continue
		}
		var live []*Session
		for _, s := range u.sessions {
			if !s.gone && !s.replaced {
				s.flow.backlog = true
				s.flow.skipped++
				live = append(live, s)
			}
		}
		u.mu.Unlock()
		for _, s := range live {
			ctx, cancel := context.WithTimeout(context.Background(), 2*pushMissedRetry)
			if _, err := r.fill(ctx, s); err != nil && first == nil {
				first = err
			}
			cancel()
		}
	}
	return first
}
