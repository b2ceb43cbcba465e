package core_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

var t0 = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

// A source that keeps guessing is refused with errno 29 after its burst,
// for any app, until its bucket refills; another source is not.
func TestKeyGuardMetersFailuresBySource(t *testing.T) {
	var g core.KeyGuard
	guesser, other := core.SourcePrefix("203.0.113.7:4000"), core.SourcePrefix("198.51.100.1:5000")
	for i := range core.KeyFailureBurstBySource {
		if ref := g.Admit(guesser, 1, t0); ref != nil {
			t.Fatalf("failure %d refused already: %v", i, ref.Err)
		}
		g.Record(guesser, 1, false, t0)
	}
	ref := g.Admit(guesser, 2, t0)
	if ref == nil {
		t.Fatal("the 21st guess was let through")
	}
	if ref.Err.Errno != core.ErrnoRateLimited || core.RetryAfterOf(ref.Err) != 6 {
		t.Fatalf("refusal: errno %d, retry after %d s; want 29 and 6 s (one failure at 10 a minute)", ref.Err.Errno, core.RetryAfterOf(ref.Err))
	}
	if !ref.Log || ref.Source != "203.0.113.7" {
		t.Fatalf("first refusal: log %v source %q, want a log line for 203.0.113.7", ref.Log, ref.Source)
	}
	if again := g.Admit(guesser, 1, t0.Add(time.Second)); again == nil || again.Log {
		t.Fatalf("second refusal within the minute: %+v, want refused without a log line", again)
	}
	if g.Admit(other, 1, t0) != nil {
		t.Fatal("another address was refused for the guesser's failures")
	}
	if g.Admit(guesser, 1, t0.Add(6*time.Second)) != nil {
		t.Fatal("still refused after retry_after")
	}
	if g.Refused() != 2 {
		t.Fatalf("Refused() = %d, want 2", g.Refused())
	}
}

// IPv6 sources are metered by /64: a host cannot dodge the limit by
// walking its own subnet.
func TestKeyGuardMetersIPv6ByPrefix(t *testing.T) {
	var g core.KeyGuard
	for i := range core.KeyFailureBurstBySource {
		src := core.SourcePrefix(netip.AddrPortFrom(netip.MustParseAddr("2001:db8:1:2::1").Next(), uint16(1000+i)).String())
		g.Record(src, 1, false, t0)
	}
	if g.Admit(core.SourcePrefix("[2001:db8:1:2:ffff::9]:1"), 1, t0) == nil {
		t.Fatal("another address of the same /64 was let through")
	}
	if g.Admit(core.SourcePrefix("[2001:db8:1:3::1]:1"), 1, t0) != nil {
		t.Fatal("another /64 was refused")
	}
}

// Guesses spread over many addresses exhaust the app's bucket; the app's
// own servers, which proved its key before, keep working.
func TestKeyGuardMetersFailuresByApp(t *testing.T) {
	var g core.KeyGuard
	own := core.SourcePrefix("192.0.2.10:443")
	g.Record(own, 7, true, t0)
	for i := range core.KeyFailureBurstByApp {
		src := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1}), 32)
		if ref := g.Admit(src, 7, t0); ref != nil {
			t.Fatalf("failure %d refused: %v", i, ref.Err)
		}
		g.Record(src, 7, false, t0)
	}
	fresh := core.SourcePrefix("10.200.0.1:1")
	if ref := g.Admit(fresh, 7, t0); ref == nil || ref.Err.Errno != core.ErrnoRateLimited {
		t.Fatalf("a fresh address guessing app 7 after %d failures: %v, want errno 29", core.KeyFailureBurstByApp, ref)
	}
	if g.Admit(fresh, 8, t0) != nil {
		t.Fatal("another app was refused for app 7's failures")
	}
	if ref := g.Admit(own, 7, t0); ref != nil {
		t.Fatalf("the app's own server was refused: %v", ref.Err)
	}
}

// Through the router: wrong keys past the limit get errno 29 even when
// the next key is right, and a right key from elsewhere is not slowed.
func TestAuthenticateAppFromRefusesAGuesser(t *testing.T) {
	f := newFixture(t, time.Second)
	ctx := context.Background()
	_, key, err := f.router.RotateKey(ctx, f.app)
	if err != nil {
		t.Fatal(err)
	}
	for range core.KeyFailureBurstBySource {
		if _, err := f.router.AuthenticateAppFrom(ctx, f.app, "wrong", "203.0.113.7:1"); core.ErrnoOf(err) != core.ErrnoBadKey {
			t.Fatalf("wrong key: %v, want errno 40", err)
		}
	}
	if _, err := f.router.AuthenticateAppFrom(ctx, f.app, key, "203.0.113.7:2"); core.ErrnoOf(err) != core.ErrnoRateLimited || core.RetryAfterOf(err) < 1 {
		t.Fatalf("right key from the guesser: %v, want errno 29 with a retry_after", err)
	}
	if _, err := f.router.AuthenticateAppFrom(ctx, f.app, key, "192.0.2.1:3"); err != nil {
		t.Fatalf("right key from another address: %v", err)
	}
	if f.router.Metrics.KeyChecksFailed.Load() != int64(core.KeyFailureBurstBySource) || f.router.Metrics.KeyChecksRefused.Load() != 1 {
		t.Fatalf("metrics: failed %d refused %d, want %d and 1", f.router.Metrics.KeyChecksFailed.Load(), f.router.Metrics.KeyChecksRefused.Load(), core.KeyFailureBurstBySource)
	}
}
