package identity

import (
	"context"
	"crypto/sha256"
	"sync/atomic"
	"time"

	"github.com/presence-service/presence/core"
)

// Defaults of GuardOptions.
const (
	DefaultMaxConcurrent = 32
	DefaultCacheTTL      = 10 * time.Minute
	DefaultCacheSize     = 10000
)

// GuardOptions tunes a Guard. The zero value gives the defaults.
type GuardOptions struct {
	// MaxConcurrent bounds the verifications in flight. Callers beyond it
	// wait for a slot until their context's deadline or MaxWait, whichever
	// comes first, then fail with "verifier busy".
	MaxConcurrent int
	MaxWait       time.Duration // 0: DefaultTimeout
	// CacheTTL is the longest a verified assertion is remembered; never
	// past the identity's own expiry. Negative: no cache.
	CacheTTL  time.Duration
	CacheSize int              // entries; 0: DefaultCacheSize
	Now       func() time.Time // nil: time.Now
}

// Guarded is a core.Verifier with bounded concurrency and a cache of
// verified assertions. See Guard.
type Guarded struct {
	v       core.Verifier
	sem     chan struct{} // a token per verification in flight
	maxWait time.Duration
	ttl     time.Duration
	now     func() time.Time
	cache   *lruCache // nil when caching is off

	hits, misses, busy atomic.Int64

	// onWait, when set by a test, is called as a caller starts waiting for
	// a slot, so tests can line callers up without sleeping.
	onWait func()
}

var _ core.Verifier = (*Guarded)(nil)

// Guard wraps v so that a slow identity provider cannot stall the server:
// at most MaxConcurrent calls reach v at once, a caller that cannot get a
// slot in time gets errno 34 "verifier busy" instead of queueing forever,
// and an assertion verified once is answered from memory until the earlier
// of its expiry and CacheTTL, so reconnects cost nothing. Only successes are
// cached: a failure may be the provider's passing trouble, and caching it
// would lock a user out for the TTL.
func Guard(v core.Verifier, opts GuardOptions) *Guarded {
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = DefaultMaxConcurrent
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = DefaultTimeout
	}
	if opts.CacheTTL == 0 {
		opts.CacheTTL = DefaultCacheTTL
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	g := &Guarded{
		v:       v,
		sem:     make(chan struct{}, opts.MaxConcurrent),
		maxWait: opts.MaxWait,
		ttl:     opts.CacheTTL,
		now:     opts.Now,
	}
	if opts.CacheTTL > 0 {
		g.cache = newLRUCache(opts.CacheSize)
	}
	return g
}

// Verify answers from the cache or verifies under the concurrency bound.
func (g *Guarded) Verify(ctx context.Context, assertion string) (core.Identity, error) {
	key := cacheKey(sha256.Sum256([]byte(assertion)))
	if id, ok := g.cached(key); ok {
		return id, nil
	}
	if err := g.acquire(ctx); err != nil {
		return core.Identity{}, err
	}
	defer func() { <-g.sem }()
	// The same assertion may have been verified while this call waited
	// (a device that reconnects at once).
	if id, ok := g.cached(key); ok {
		return id, nil
	}
	g.misses.Add(1)
	id, err := g.v.Verify(ctx, assertion)
	if err != nil {
		return core.Identity{}, err
	}
	if g.cache != nil {
		now := g.now()
		until := now.Add(g.ttl)
		if !id.Expires.IsZero() && id.Expires.Before(until) {
			until = id.Expires
		}
		if now.Before(until) {
			g.cache.put(key, id, until)
		}
	}
	return id, nil
}

func (g *Guarded) cached(key cacheKey) (core.Identity, bool) {
	if g.cache == nil {
		return core.Identity{}, false
	}
	id, ok := g.cache.get(key, g.now())
	if ok {
		g.hits.Add(1)
	}
	return id, ok
}

// acquire takes a slot, waiting at most until ctx ends or maxWait passes.
func (g *Guarded) acquire(ctx context.Context) error {
	select {
	case g.sem <- struct{}{}:
		return nil
	default:
	}
	if g.onWait != nil {
		g.onWait()
	}
	t := time.NewTimer(g.maxWait)
	defer t.Stop()
	select {
	case g.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
	case <-t.C:
	}
	g.busy.Add(1)
	return core.Errorf(core.ErrnoInvalidAssertion, "verifier busy")
}

// GuardStats counts what a Guard did, for logs and metrics.
type GuardStats struct {
	Hits   int64 // answered from the cache
	Misses int64 // passed to the verifier
	Busy   int64 // refused: no slot in time
	Cached int   // entries in the cache now
}

// Stats returns the counters so far.
func (g *Guarded) Stats() GuardStats {
	s := GuardStats{Hits: g.hits.Load(), Misses: g.misses.Load(), Busy: g.busy.Load()}
	if g.cache != nil {
		s.Cached = g.cache.len()
	}
	return s
}
