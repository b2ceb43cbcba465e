package identity

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

// countingVerifier counts calls and calls in flight. When release is set,
// each call reports on entered and blocks until release is closed.
type countingVerifier struct {
	entered chan string
	release chan struct{}
	slow    func(assertion string) bool // which calls block; nil: all
	expires time.Time                   // of every identity it vouches for

	calls, inflight, maxInflight atomic.Int32
}

func (c *countingVerifier) Verify(ctx context.Context, assertion string) (core.Identity, error) {
	c.calls.Add(1)
	n := c.inflight.Add(1)
	defer c.inflight.Add(-1)
	for {
		m := c.maxInflight.Load()
		if n <= m || c.maxInflight.CompareAndSwap(m, n) {
			break
		}
	}
	if c.release != nil && (c.slow == nil || c.slow(assertion)) {
		c.entered <- assertion
		<-c.release
	}
	if assertion == "bad" {
		return core.Identity{}, core.Errorf(core.ErrnoInvalidAssertion, "invalid assertion: bad")
	}
	return core.Identity{Subject: assertion, Email: assertion + "@example.com", Expires: c.expires}, nil
}

func blockingVerifier() *countingVerifier {
	return &countingVerifier{entered: make(chan string, 100), release: make(chan struct{})}
}

// clock is a time tests move by hand.
type clock struct {
	mu  sync.Mutex // guards: now
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestGuardBoundsConcurrency(t *testing.T) {
	const limit, callers = 2, 5
	v := blockingVerifier()
	g := Guard(v, GuardOptions{MaxConcurrent: limit, MaxWait: time.Hour})
	waiting := make(chan struct{}, callers)
	g.onWait = func() { waiting <- struct{}{} }

	errs := make(chan error, callers)
	for i := range callers {
		go func() {
			_, err := g.Verify(context.Background(), fmt.Sprintf("user-%d", i))
			errs <- err
		}()
	}
	// limit callers get in; the rest queue for a slot.
	for range limit {
		<-v.entered
	}
	for range callers - limit {
		<-waiting
	}
	if n := v.inflight.Load(); n != limit {
		t.Fatalf("%d verifications in flight, want %d", n, limit)
	}
	close(v.release)
	for range callers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if m := v.maxInflight.Load(); m != limit {
		t.Fatalf("at most %d in flight, want %d", m, limit)
	}
	if c := v.calls.Load(); c != callers {
		t.Fatalf("%d calls, want %d", c, callers)
	}
}

func TestGuardBusy(t *testing.T) {
	v := blockingVerifier()
	defer close(v.release)
	g := Guard(v, GuardOptions{MaxConcurrent: 1, MaxWait: time.Hour})
	waiting := make(chan struct{}, 1)
	g.onWait = func() { waiting <- struct{}{} }

	go g.Verify(context.Background(), "slowpoke")
	<-v.entered // the only slot is taken

	t.Run("context ends while waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-waiting
			cancel()
		}()
		_, err := g.Verify(ctx, "alice")
		wantErr(t, err, core.ErrnoInvalidAssertion, "verifier busy")
	})
	t.Run("MaxWait passes", func(t *testing.T) {
		g2 := Guard(v, GuardOptions{MaxConcurrent: 1, MaxWait: time.Millisecond})
		g2.sem <- struct{}{} // its slot is taken too
		_, err := g2.Verify(context.Background(), "alice")
		wantErr(t, err, core.ErrnoInvalidAssertion, "verifier busy")
		if s := g2.Stats(); s.Busy != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
	if c := v.calls.Load(); c != 1 {
		t.Fatalf("%d calls reached the verifier, want only the first", c)
	}
}

func TestGuardCache(t *testing.T) {
	ctx := context.Background()
	clk := &clock{now: time.Unix(1_700_000_000, 0)}

	t.Run("hit until the identity expires", func(t *testing.T) {
		v := &countingVerifier{expires: clk.Now().Add(time.Minute)}
		g := Guard(v, GuardOptions{CacheTTL: time.Hour, Now: clk.Now})
		for range 3 {
			if id, err := g.Verify(ctx, "alice"); err != nil || id.Subject != "alice" {
				t.Fatalf("%+v %v", id, err)
			}
		}
		if c := v.calls.Load(); c != 1 {
			t.Fatalf("%d calls for one assertion, want 1", c)
		}
		if s := g.Stats(); s.Hits != 2 || s.Misses != 1 || s.Cached != 1 {
			t.Fatalf("stats %+v", s)
		}
		clk.Advance(time.Minute) // the identity's own expiry
		g.Verify(ctx, "alice")
		if c := v.calls.Load(); c != 2 {
			t.Fatalf("%d calls after expiry, want 2 (verified again)", c)
		}
	})
	t.Run("hit until the TTL", func(t *testing.T) {
		v := &countingVerifier{} // no expiry given
		g := Guard(v, GuardOptions{CacheTTL: 5 * time.Minute, Now: clk.Now})
		g.Verify(ctx, "alice")
		clk.Advance(4 * time.Minute)
		g.Verify(ctx, "alice")
		if c := v.calls.Load(); c != 1 {
			t.Fatalf("%d calls within the TTL, want 1", c)
		}
		clk.Advance(2 * time.Minute)
		g.Verify(ctx, "alice")
		if c := v.calls.Load(); c != 2 {
			t.Fatalf("%d calls past the TTL, want 2", c)
		}
	})
	t.Run("bounded, least recently used goes", func(t *testing.T) {
		v := &countingVerifier{}
		g := Guard(v, GuardOptions{CacheSize: 2, Now: clk.Now})
		g.Verify(ctx, "a")
		g.Verify(ctx, "b")
		g.Verify(ctx, "a") // a is now the most recently used
		g.Verify(ctx, "c") // evicts b
		if s := g.Stats(); s.Cached != 2 || v.calls.Load() != 3 {
			t.Fatalf("stats %+v, calls %d", s, v.calls.Load())
		}
		g.Verify(ctx, "a")
		if c := v.calls.Load(); c != 3 {
			t.Fatalf("a was evicted: %d calls", c)
		}
		g.Verify(ctx, "b")
		if c := v.calls.Load(); c != 4 {
			t.Fatalf("b was kept: %d calls", c)
		}
	})
	t.Run("errors are not cached", func(t *testing.T) {
		v := &countingVerifier{}
		g := Guard(v, GuardOptions{Now: clk.Now})
		for range 2 {
			_, err := g.Verify(ctx, "bad")
			wantErr(t, err, core.ErrnoInvalidAssertion, "bad")
		}
		if c := v.calls.Load(); c != 2 {
			t.Fatalf("%d calls, want each failure verified again", c)
		}
	})
	t.Run("off", func(t *testing.T) {
		v := &countingVerifier{}
		g := Guard(v, GuardOptions{CacheTTL: -1, Now: clk.Now})
		g.Verify(ctx, "alice")
		g.Verify(ctx, "alice")
		if c := v.calls.Load(); c != 2 {
			t.Fatalf("%d calls with the cache off, want 2", c)
		}
	})
}

// TestGuardWaiterUsesCache: a caller that queued behind the verification
// of the same assertion is answered from the cache when its turn comes.
func TestGuardWaiterUsesCache(t *testing.T) {
	v := blockingVerifier()
	g := Guard(v, GuardOptions{MaxConcurrent: 1, MaxWait: time.Hour})
	waiting := make(chan struct{}, 1)
	g.onWait = func() { waiting <- struct{}{} }
	first := make(chan error, 1)
	go func() {
		_, err := g.Verify(context.Background(), "alice")
		first <- err
	}()
	<-v.entered
	second := make(chan error, 1)
	go func() {
		_, err := g.Verify(context.Background(), "alice")
		second <- err
	}()
	<-waiting
	close(v.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if c := v.calls.Load(); c != 1 {
		t.Fatalf("%d calls, want 1", c)
	}
}

// TestGuardSlowVerifierDoesNotStallCachedConnects: with every slot taken by
// a verification that hangs, a device whose assertion is cached still
// connects at once.
func TestGuardSlowVerifierDoesNotStallCachedConnects(t *testing.T) {
	v := blockingVerifier()
	v.slow = func(a string) bool { return a == "slowpoke" }
	g := Guard(v, GuardOptions{MaxConcurrent: 1, MaxWait: time.Hour})
	if _, err := g.Verify(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	go g.Verify(context.Background(), "slowpoke")
	<-v.entered // the only slot now hangs
	defer close(v.release)
	id, err := g.Verify(context.Background(), "alice")
	if err != nil || id.Subject != "alice" {
		t.Fatalf("%+v %v", id, err)
	}
}
