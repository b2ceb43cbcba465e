package core

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Failed API-key checks are metered so that guessing keys is slow (issue
// 21; docs/decisions.md "API-key guessing"). Two token buckets count
// failures, not checks:
//
//   - one per source address (an IPv6 address by its /64, which one host
//     usually owns whole): past it, that source's key checks are refused
//     with errno 29 without being made, for any app;
//   - one per app: past it (a guess spread over many addresses), the
//     app's key checks are refused with errno 29, except from sources
//     that proved the app's key within KeyGuardTrustFor, so the app's own
//     servers keep working while it is attacked.
//
// A check that succeeds takes no token and waits for nothing.
const (
	KeyFailuresPerMinuteBySource = 10  // refill, failures a minute per source
	KeyFailureBurstBySource      = 20  // failures a fresh source may make at once
	KeyFailuresPerMinuteByApp    = 100 // refill, failures a minute per app
	KeyFailureBurstByApp         = 200 // failures an app's key may take at once
	KeyGuardTrustFor             = 24 * time.Hour

	// keyGuardMaxEntries bounds each map; a bucket that has refilled is
	// the same as none and is dropped first.
	keyGuardMaxEntries = 1 << 16
)

// KeyGuard meters failed key checks. The zero value is ready to use.
type KeyGuard struct {
	mu      sync.Mutex // guards: sources, apps, trusted, refused
	sources map[netip.Prefix]*keyBucket
	apps    map[AppID]*keyBucket
	trusted map[trustKey]time.Time // last success of (app, source)
	refused int64                  // checks refused since start
}

type trustKey struct {
	app AppID
	src netip.Prefix
}

// keyBucket holds failure tokens; loggedAt is when its source's refusal
// was last logged, so that a refused source writes one line per minute.
type keyBucket struct {
	tokens   float64
	last     time.Time
	loggedAt time.Time
}

// KeyRefusal is the answer to a key check that the guard refused: errno
// 29 (Err), how long to wait, and whether this refusal is the one of its
// window that should be logged.
type KeyRefusal struct {
	Err        *Error
	RetryAfter time.Duration
	Log        bool
	Source     string // the source, as logged: an address or a /64
}

// retryAfterError carries an errno 29's wait inside its *Error.
type retryAfterError struct{ after time.Duration }

func (e *retryAfterError) Error() string { return fmt.Sprintf("retry after %s", e.after) }

// RetryAfterOf returns how long a caller refused with errno 29 should
// wait before trying again, rounded up to whole seconds; 0 if err says
// nothing about it.
func RetryAfterOf(err error) int {
	var ra *retryAfterError
	if !errors.As(err, &ra) {
		return 0
	}
	secs := int((ra.after + time.Second - 1) / time.Second)
	return max(secs, 1)
}

// SourcePrefix is the unit a source is metered by: an IPv4 address
// itself, an IPv6 address by its /64. An address that does not parse
// (a Unix socket, a test's pipe) is metered as one unknown source.
func SourcePrefix(addr string) netip.Prefix {
	ap, err := netip.ParseAddrPort(addr)
	var a netip.Addr
	if err == nil {
		a = ap.Addr()
	} else if a, err = netip.ParseAddr(addr); err != nil {
		return netip.Prefix{}
	}
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// Admit says whether a key check for app from src may be made now.
func (g *KeyGuard) Admit(src netip.Prefix, app AppID, now time.Time) *KeyRefusal {
	g.mu.Lock()
	defer g.mu.Unlock()
	if b := g.sources[src]; b != nil {
		b.refill(now, KeyFailuresPerMinuteBySource, KeyFailureBurstBySource)
		if b.tokens < 1 {
			return g.refuse(b, src, now, KeyFailuresPerMinuteBySource, "too many wrong API keys from this address")
		}
	}
	if b := g.apps[app]; b != nil {
		b.refill(now, KeyFailuresPerMinuteByApp, KeyFailureBurstByApp)
		if b.tokens < 1 {
			if at, ok := g.trusted[trustKey{app, src}]; ok && now.Sub(at) < KeyGuardTrustFor {
				return nil
			}
			return g.refuse(b, src, now, KeyFailuresPerMinuteByApp, "too many wrong API keys for this app")
		}
	}
	return nil
}

func (g *KeyGuard) refuse(b *keyBucket, src netip.Prefix, now time.Time, perMinute int, reason string) *KeyRefusal {
	g.refused++
	wait := time.Duration((1 - b.tokens) / (float64(perMinute) / 60) * float64(time.Second))
	r := &KeyRefusal{
		Err:        &Error{Errno: ErrnoRateLimited, Reason: "slow down: " + reason, Err: &retryAfterError{wait}},
		RetryAfter: wait,
		Source:     sourceString(src),
	}
	// Logged once a minute per source; the per-app bucket logs by the
	// source too, since that is what an operator can act on.
	sb := bucket(&g.sources, src, now, KeyFailureBurstBySource, KeyFailuresPerMinuteBySource)
	if now.Sub(sb.loggedAt) >= time.Minute {
		sb.loggedAt = now
		r.Log = true
	}
	return r
}

// Record records the outcome of a key check that Admit let through.
func (g *KeyGuard) Record(src netip.Prefix, app AppID, ok bool, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ok {
		if g.trusted == nil {
			g.trusted = make(map[trustKey]time.Time)
		}
		if len(g.trusted) >= keyGuardMaxEntries {
			for k, at := range g.trusted {
				if now.Sub(at) >= KeyGuardTrustFor {
					delete(g.trusted, k)
				}
			}
		}
		if len(g.trusted) < keyGuardMaxEntries {
			g.trusted[trustKey{app, src}] = now
		}
		return
	}
	sb := bucket(&g.sources, src, now, KeyFailureBurstBySource, KeyFailuresPerMinuteBySource)
	sb.refill(now, KeyFailuresPerMinuteBySource, KeyFailureBurstBySource)
	sb.tokens = max(sb.tokens-1, 0)
	ab := bucket(&g.apps, app, now, KeyFailureBurstByApp, KeyFailuresPerMinuteByApp)
	ab.refill(now, KeyFailuresPerMinuteByApp, KeyFailureBurstByApp)
	ab.tokens = max(ab.tokens-1, 0)
}

// Refused is how many key checks the guard has refused.
func (g *KeyGuard) Refused() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refused
}

// bucket returns m's bucket for k, making a full one if there is none.
// A full map first drops the buckets that have refilled (they hold no
// memory of failures); if none has, the new source shares the bucket of
// the zero key, so that a flood of fresh addresses is still metered.
func bucket[K comparable](m *map[K]*keyBucket, k K, now time.Time, burst int, perMinute int) *keyBucket {
	if *m == nil {
		*m = make(map[K]*keyBucket)
	}
	if b := (*m)[k]; b != nil {
		return b
	}
	if len(*m) >= keyGuardMaxEntries {
		for key, b := range *m {
			b.refill(now, perMinute, burst)
			if b.tokens >= float64(burst) && now.Sub(b.loggedAt) >= time.Minute {
				delete(*m, key)
			}
		}
		if len(*m) >= keyGuardMaxEntries {
			var zero K
			k = zero
			if b := (*m)[k]; b != nil {
				return b
			}
		}
	}
	b := &keyBucket{tokens: float64(burst), last: now}
	(*m)[k] = b
	return b
}

func (b *keyBucket) refill(now time.Time, perMinute, burst int) {
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(float64(burst), b.tokens+dt*float64(perMinute)/60)
		b.last = now
	}
}

func sourceString(p netip.Prefix) string {
	switch {
	case !p.IsValid():
		return "unknown"
	case p.Addr().Is4():
		return p.Addr().String()
	}
	return p.String()
}

// AuthenticateAppFrom is AuthenticateApp for a caller at source address
// src (host:port or host), metered by the router's KeyGuard: errno 29
// (RetryAfterOf says how long) once src, or everyone but the app's known
// sources, has failed too often.
func (r *Router) AuthenticateAppFrom(ctx context.Context, id AppID, key, src string) (*App, error) {
	p := SourcePrefix(src)
	if err := r.AdmitKeyCheck(p, id); err != nil {
		return nil, err
	}
	a, err := r.AuthenticateApp(ctx, id, key)
	r.RecordKeyCheck(p, id, ErrnoOf(err) != ErrnoBadKey)
	return a, err
}

// AdmitKeyCheck asks the KeyGuard whether a key check for app from src
// may be made; the refusal is logged once a minute per source and
// counted. Edges that check a key themselves (the XEP-0114 digest) call
// it before, and RecordKeyCheck after.
func (r *Router) AdmitKeyCheck(src netip.Prefix, app AppID) error {
	ref := r.keyGuard.Admit(src, app, r.Now())
	if ref == nil {
		return nil
	}
	r.Metrics.KeyChecksRefused.Add(1)
	if ref.Log {
		r.log.Warn("API-key guessing: key checks refused", "source", ref.Source, "app", app, "retry_after", ref.RetryAfter.Round(time.Second))
	}
	return ref.Err
}

// RecordKeyCheck records a key check's outcome: ok false is a wrong key.
func (r *Router) RecordKeyCheck(src netip.Prefix, app AppID, ok bool) {
	if !ok {
		r.Metrics.KeyChecksFailed.Add(1)
	}
	r.keyGuard.Record(src, app, ok, r.Now())
}
