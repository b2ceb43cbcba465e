package admin

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	presence "github.com/presence-service/presence"
)

// sharedSignOuts is Config.SignOuts in memory, shared by two servers as
// a cluster's bucket is; down makes Has and Add fail, addDown Add only.
type sharedSignOuts struct {
	mu            sync.Mutex // guards: ids, down, addDown, lookups
	ids           map[string]time.Time
	down, addDown bool
	lookups       int
}

var errBucketDown = errors.New("bucket unreachable")

func (s *sharedSignOuts) Add(_ context.Context, id string, expires time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down || s.addDown {
		return errBucketDown
	}
	s.ids[id] = expires
	return nil
}

func (s *sharedSignOuts) Has(_ context.Context, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups++
	if s.down {
		return false, errBucketDown
	}
	_, ok := s.ids[id]
	return ok, nil
}

func (s *sharedSignOuts) set(down, addDown bool) {
	s.mu.Lock()
	s.down, s.addDown = down, addDown
	s.mu.Unlock()
}

// Two servers with one session key and shared sign-outs (a cluster): a
// sign-out on one ends the session on the other; while the sign-outs
// cannot be asked, a session is refused (503, not a page as signed in);
// a sign-out that cannot be recorded says so and changes nothing.
func TestSharedSignOuts(t *testing.T) {
	shared := &sharedSignOuts{ids: make(map[string]time.Time)}
	key := []byte("0123456789abcdef0123456789abcdef")
	opt := func(_ *presence.Config, c *Config) { c.SessionKey, c.SignOuts = key, shared }
	one, two := newEnv(t, opt), newEnv(t, opt)
	on := func(e *env, b *browser) *browser { return &browser{e: e, c: b.c} } // same cookies (one host)

	alice := one.browser()
	alice.login("alice@example.org")
	wantStatus(t, on(two, alice).get("/me"), http.StatusOK)
	wantStatus(t, alice.postForm("/me", "/logout", nil), http.StatusSeeOther)
	r := on(two, alice).get("/me")
	wantStatus(t, r, http.StatusSeeOther)
	if got := r.Header.Get("Location"); got != "/login?next=%2Fme" {
		t.Fatalf("after a sign-out on the other server /me goes to %q", got)
	}

	bob := one.browser()
	bob.login("bob@example.org")
	token := bob.csrf("/me")
	shared.set(true, false)
	r = on(two, bob).get("/me")
	wantStatus(t, r, http.StatusServiceUnavailable)
	wantBody(t, r, "cannot be checked right now")
	wantStatus(t, bob.post("/logout", map[string][]string{"csrf_token": {token}}), http.StatusServiceUnavailable)

	shared.set(false, true)
	r = bob.post("/logout", map[string][]string{"csrf_token": {token}})
	wantStatus(t, r, http.StatusServiceUnavailable)
	wantBody(t, r, "You are still signed in")
	shared.set(false, false)
	wantStatus(t, on(two, bob).get("/me"), http.StatusOK)
	wantStatus(t, bob.get("/me"), http.StatusOK)

	// A session known signed out is not asked about again.
	shared.mu.Lock()
	before := shared.lookups
	shared.mu.Unlock()
	wantStatus(t, on(two, alice).get("/me"), http.StatusSeeOther)
	shared.mu.Lock()
	after := shared.lookups
	shared.mu.Unlock()
	if after != before {
		t.Fatalf("a session known signed out was looked up again (%d look-ups)", after-before)
	}
}
