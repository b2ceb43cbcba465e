package admin

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
)

// fakeFlow is an identity provider's code flow: it remembers what
// AuthCodeURL was given and checks Exchange against it, as a real issuer
// would (PKCE S256, nonce, redirect URL).
type fakeFlow struct {
	mu        sync.Mutex
	challenge string
	nonce     string
	redirect  string
	exchanged int
}

func (f *fakeFlow) AuthCodeURL(state, nonce, challenge, redirectURL string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.challenge, f.nonce, f.redirect = challenge, nonce, redirectURL
	return "https://idp.example/authorize?" + url.Values{"state": {state}, "nonce": {nonce},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "redirect_uri": {redirectURL}}.Encode()
}

func (f *fakeFlow) Exchange(_ context.Context, code, verifier, nonce, redirectURL string) (core.Identity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exchanged++
	if code != "good-code" || oauth2.S256ChallengeFromVerifier(verifier) != f.challenge || nonce != f.nonce || redirectURL != f.redirect {
		return core.Identity{}, core.Errorf(core.ErrnoInvalidAssertion, "sign-in refused by the identity provider: invalid_grant")
	}
	return core.Identity{Subject: "fxa-uid-123", Email: "Carol@Example.org"}, nil
}

func TestLoginOIDC(t *testing.T) {
	flow := &fakeFlow{}
	e := newEnv(t, func(cfg *presence.Config, c *Config) {
		cfg.Auth.Verifier = "oidc"
		c.CodeFlow = flow
	})
	b := e.browser()
	r := b.get("/login?next=/me")
	wantStatus(t, r, http.StatusSeeOther)
	loc, _ := url.Parse(r.Header.Get("Location"))
	if loc.Host != "idp.example" || loc.Query().Get("code_challenge_method") != "S256" || loc.Query().Get("code_challenge") == "" {
		t.Fatalf("Location %s", loc)
	}
	if got := loc.Query().Get("redirect_uri"); got != e.srv.URL+"/login/callback" {
		t.Fatalf("redirect_uri %q", got)
	}
	var oc *http.Cookie
	for _, c := range r.Cookies() {
		if c.Name == oidcCookie {
			oc = c
		}
	}
	if oc == nil || !oc.HttpOnly || oc.Path != "/login" || oc.MaxAge <= 0 || oc.MaxAge > 600 {
		t.Fatalf("state cookie %+v", oc)
	}
	state := loc.Query().Get("state")

	// A wrong state is refused before the code is redeemed.
	r = b.get("/login/callback?code=good-code&state=forged")
	wantStatus(t, r, http.StatusBadRequest)
	if flow.exchanged != 0 {
		t.Fatal("exchanged with a wrong state")
	}
	// The state cookie is single use: start again.
	r = b.get("/login?next=/me")
	state = mustQuery(t, r.Header.Get("Location"), "state")
	r = b.get("/login/callback?code=good-code&state=" + url.QueryEscape(state))
	wantStatus(t, r, http.StatusSeeOther)
	if r.Header.Get("Location") != "/me" {
		t.Fatalf("Location %q", r.Header.Get("Location"))
	}
	r = b.get("/me")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "carol@example.org")
	// A replay of the same callback has no state cookie any more.
	wantStatus(t, b.get("/login/callback?code=good-code&state="+url.QueryEscape(state)), http.StatusBadRequest)

	// A callback in another browser (login CSRF) is refused.
	other := e.browser()
	wantStatus(t, other.get("/login/callback?code=good-code&state="+url.QueryEscape(state)), http.StatusBadRequest)

	// The provider's error and a bad code are both a clear 403.
	b2 := e.browser()
	st := mustQuery(t, b2.get("/login").Header.Get("Location"), "state")
	r = b2.get("/login/callback?error=access_denied&state=" + url.QueryEscape(st))
	wantStatus(t, r, http.StatusForbidden)
	wantBody(t, r, "access_denied")
	st = mustQuery(t, b2.get("/login").Header.Get("Location"), "state")
	r = b2.get("/login/callback?code=bad&state=" + url.QueryEscape(st))
	wantStatus(t, r, http.StatusForbidden)
	wantBody(t, r, "invalid_grant")

	// The dev form does not exist under oidc.
	wantStatus(t, b2.post("/login", url.Values{"email": {"x@example.org"}}), http.StatusForbidden)
}

func mustQuery(t *testing.T, rawURL, key string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil || u.Query().Get(key) == "" {
		t.Fatalf("%q has no %s", rawURL, key)
	}
	return u.Query().Get(key)
}

type fakeVerifier struct{}

func (fakeVerifier) Verify(_ context.Context, a string) (core.Identity, error) {
	if a == "good" {
		return core.Identity{Subject: "dave@example.org", Email: "dave@example.org"}, nil
	}
	return core.Identity{}, core.Errorf(core.ErrnoInvalidAssertion, "invalid assertion: bad signature")
}

func TestLoginBrowserID(t *testing.T) {
	e := newEnv(t, func(cfg *presence.Config, c *Config) {
		cfg.Auth.Verifier = "browserid"
		c.Verifier = fakeVerifier{}
	})
	b := e.browser()
	r := b.postForm("/login", "/login", url.Values{"assertion": {"bad"}})
	wantStatus(t, r, http.StatusBadRequest)
	wantBody(t, r, "bad signature")
	r = b.postForm("/login", "/login", url.Values{"assertion": {"good"}, "next": {"/me"}})
	wantStatus(t, r, http.StatusSeeOther)
	wantBody(t, b.get("/me"), "dave@example.org")
}

func TestSessionExpiresAndSecureCookie(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnv(t, func(cfg *presence.Config, c *Config) {
		cfg.Server.TLSCert, cfg.Server.TLSKey = "cert.pem", "key.pem"
		c.SessionTTL = time.Hour
	})
	e.admin.sessions.now = clock
	b := e.browser()
	tok := b.csrf("/login")
	r := b.post("/login", url.Values{"email": {"a@example.org"}, "csrf_token": {tok}})
	var secure bool
	for _, c := range r.Cookies() {
		if c.Name == sessionCookie {
			secure = c.Secure
			// The test talks plain http: hand the cookie over by hand.
			u, _ := url.Parse(e.srv.URL)
			b.c.Jar.SetCookies(u, []*http.Cookie{{Name: c.Name, Value: c.Value, Path: "/"}})
		}
	}
	if !secure {
		t.Fatal("session cookie not Secure under TLS")
	}
	wantStatus(t, b.get("/me"), http.StatusOK)
	mu.Lock()
	now = now.Add(time.Hour + time.Second)
	mu.Unlock()
	r = b.get("/me")
	wantStatus(t, r, http.StatusSeeOther)
	if !strings.HasPrefix(r.Header.Get("Location"), "/login") {
		t.Fatalf("expired session: Location %q", r.Header.Get("Location"))
	}
}
