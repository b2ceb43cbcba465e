package core

import (
	"context"
	"errors"
	"sync"
)

// grantCacheUsers bounds how many users' grants are kept in memory. Past
// it, an arbitrary user is forgotten for each one added; the store is the
// truth, the cache only spares it the read.
const grantCacheUsers = 1 << 16

// grantCache keeps each user's grants (PUIDs by app) as the registry last
// returned them, since every connect needs them (docs/decisions.md).
// Grants change only through a Router (Grant, Revoke), whose invalidation
// reaches every router over the Bus after the registry has changed and
// before the user's live state is touched.
//
// An entry is immutable once stored: readers share its map without a
// lock. Whether a caller's copy is still the current one is a pointer
// comparison (stillCurrent), which Connect and SetVisibility make while
// they hold the user's lock, so that a revoke that raced with them is
// either seen by them or applied after them.
type grantCache struct {
	shards [shardCount]grantShard
}

type grantShard struct {
	mu  sync.Mutex // guards: m, gen
	m   map[string]*grantEntry
	gen uint64 // bumped by every invalidation in the shard
}

// grantEntry is one user's grants. Its map and slices are never written
// after the entry is built.
type grantEntry struct {
	byApp map[AppID][]string
}

func (c *grantCache) init() {
	for i := range c.shards {
		c.shards[i].m = make(map[string]*grantEntry)
	}
}

func (c *grantCache) shard(user string) *grantShard { return &c.shards[shardOf(user)] }

// lookup returns the user's cached entry, or nil and the shard's
// generation to hand to store.
func (c *grantCache) lookup(user string) (*grantEntry, uint64) {
	sh := c.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[user], sh.gen
}

// store caches e for user unless an invalidation in the shard happened
// since gen was read: then e may predate a revoke and is not kept.
func (c *grantCache) store(user string, e *grantEntry, gen uint64) {
	sh := c.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.gen != gen {
		return
	}
	if _, ok := sh.m[user]; !ok && len(sh.m) >= grantCacheUsers/shardCount {
		for victim := range sh.m { // map order is random enough for a bound
			delete(sh.m, victim)
			break
		}
	}
	sh.m[user] = e
}

// invalidate forgets the user's grants. Call it after the store changed
// them and before the user's live state is updated.
func (c *grantCache) invalidate(user string) {
	sh := c.shard(user)
	sh.mu.Lock()
	delete(sh.m, user)
	sh.gen++
	sh.mu.Unlock()
}

// invalidateAll forgets every user's grants (Bus: CachesLost).
func (c *grantCache) invalidateAll() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		clear(sh.m)
		sh.gen++
		sh.mu.Unlock()
	}
}

// stillCurrent reports whether e is the user's cached entry, i.e. no
// Grant or Revoke for the user has invalidated it since it was read.
func (c *grantCache) stillCurrent(user string, e *grantEntry) bool {
	sh := c.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[user] == e
}

// grantsOf returns the user's grants, by app, from the cache or the store.
// The entry may not be cached (an invalidation raced with the read);
// callers that must not act on stale grants use lockWithGrants.
func (r *Router) grantsOf(ctx context.Context, userID string) (*grantEntry, error) {
	e, gen := r.grants.lookup(userID)
	if e != nil {
		return e, nil
	}
	e, err := r.loadGrants(ctx, userID)
	if err != nil {
		return nil, err
	}
	r.grants.store(userID, e, gen)
	return e, nil
}

// loadGrants reads the user's grants from the store.
func (r *Router) loadGrants(ctx context.Context, userID string) (*grantEntry, error) {
	gs, err := r.reg.UserGrants(ctx, userID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	m := make(map[AppID][]string, len(gs))
	for _, g := range gs {
		m[g.AppID] = append(m[g.AppID], g.PUID)
	}
	return &grantEntry{byApp: m}, nil
}

// grantView is a user's grants and a device's app ids split by them.
type grantView struct {
	byApp            map[AppID][]string // shared: never write to it
	visible, ignored []AppID
}

// lockWithGrants calls lock, which returns the user's state locked, and
// returns it together with the user's grants and ids split by them, such
// that no Grant or Revoke has overtaken them: one that invalidates the
// cache after this returns updates the live state only after the caller
// unlocks. The store is read outside the lock, except when the grants keep
// changing under us (then the read is under the lock: a Revoke that
// commits after it waits for the lock to update the live state).
func (r *Router) lockWithGrants(ctx context.Context, userID string, ids []AppID, lock func() *userState) (*userState, grantView, error) {
	const tries = 3
	for range tries {
		e, err := r.grantsOf(ctx, userID)
		if err != nil {
			return nil, grantView{}, err
		}
		v := grantView{byApp: e.byApp}
		if v.visible, v.ignored, err = r.filterApps(ctx, ids, e.byApp); err != nil {
			return nil, grantView{}, err
		}
		u := lock()
		if r.grants.stillCurrent(userID, e) {
			return u, v, nil
		}
		r.dropUserIfIdleLocked(u)
		u.mu.Unlock()
	}
	u := lock()
	e, err := r.loadGrants(ctx, userID)
	if err != nil {
		r.dropUserIfIdleLocked(u)
		u.mu.Unlock()
		return nil, grantView{}, err
	}
	v := grantView{byApp: e.byApp}
	if v.visible, v.ignored, err = r.filterApps(ctx, ids, e.byApp); err != nil {
		r.dropUserIfIdleLocked(u)
		u.mu.Unlock()
		return nil, grantView{}, err
	}
	return u, v, nil
}
