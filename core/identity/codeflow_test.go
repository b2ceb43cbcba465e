package identity

import (
	"context"
	"crypto/rand"
	"net/url"
	"testing"

	"golang.org/x/oauth2"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/internal/oidctest"
)

const callback = "https://presence.test/login/callback"

// signInFlow is what the admin pages do around the browser: make the
// secrets, send the browser to AuthCodeURL, check state on its return.
type signInFlow struct {
	state, nonce, verifier string
}

func newSignInFlow() signInFlow {
	return signInFlow{state: rand.Text(), nonce: rand.Text(), verifier: oauth2.GenerateVerifier()}
}

func (s signInFlow) authURL(cf core.CodeFlow) string {
	return cf.AuthCodeURL(s.state, s.nonce, oauth2.S256ChallengeFromVerifier(s.verifier), callback)
}

func TestCodeFlow(t *testing.T) {
	f := oidctest.NewIssuer(t)
	o := newTestOIDC(t, f)
	ctx := context.Background()

	s := newSignInFlow()
	u, err := url.Parse(s.authURL(o))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("nonce") != s.nonce || q.Get("state") != s.state || q.Get("redirect_uri") != callback {
		t.Fatalf("auth URL misses PKCE, nonce, state or redirect: %s", u)
	}

	code, state := f.SignIn(t, u.String(), "Alice@Example.com")
	if state != s.state {
		t.Fatalf("state %q came back, want %q", state, s.state)
	}
	id, err := o.Exchange(ctx, code, s.verifier, s.nonce, callback)
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != oidctest.SubjectOf("Alice@Example.com") || id.Email != "alice@example.com" {
		t.Fatalf("identity = %+v", id)
	}

	// A code is good once.
	_, err = o.Exchange(ctx, code, s.verifier, s.nonce, callback)
	wantErr(t, err, core.ErrnoInvalidAssertion, "invalid_grant")
}

func TestCodeFlowRefusals(t *testing.T) {
	f := oidctest.NewIssuer(t)
	o := newTestOIDC(t, f)
	ctx := context.Background()
	signIn := func() (signInFlow, string) {
		s := newSignInFlow()
		code, _ := f.SignIn(t, s.authURL(o), "bob@example.com")
		return s, code
	}

	t.Run("wrong PKCE verifier", func(t *testing.T) {
		_, code := signIn()
		_, err := o.Exchange(ctx, code, oauth2.GenerateVerifier(), "n", callback)
		wantErr(t, err, core.ErrnoInvalidAssertion, "sign-in refused by the identity provider: invalid_grant")
	})
	t.Run("wrong nonce", func(t *testing.T) {
		s, code := signIn()
		_, err := o.Exchange(ctx, code, s.verifier, "another-nonce", callback)
		wantErr(t, err, core.ErrnoInvalidAssertion, "nonce mismatch")
	})
	t.Run("wrong redirect", func(t *testing.T) {
		s, code := signIn()
		_, err := o.Exchange(ctx, code, s.verifier, s.nonce, "https://evil.test/cb")
		wantErr(t, err, core.ErrnoInvalidAssertion, "invalid_grant")
	})
	t.Run("missing nonce", func(t *testing.T) {
		s, code := signIn()
		_, err := o.Exchange(ctx, code, s.verifier, "", callback)
		wantErr(t, err, core.ErrnoInvalidAssertion, "missing")
	})
	t.Run("wrong client secret", func(t *testing.T) {
		bad := newTestOIDC(t, f, func(c *OIDCConfig) { c.ClientSecret = "guess" })
		s := newSignInFlow()
		code, _ := f.SignIn(t, s.authURL(bad), "bob@example.com")
		_, err := bad.Exchange(ctx, code, s.verifier, s.nonce, callback)
		wantErr(t, err, core.ErrnoInvalidAssertion, "invalid_client")
	})
}

// TestCodeFlowEmailFromUserInfo: Firefox Accounts keeps the email in its
// profile server, not in the ID token; Exchange asks userinfo for it.
func TestCodeFlowEmailFromUserInfo(t *testing.T) {
	f := oidctest.NewIssuer(t)
	f.SetEmailInIDToken(false)
	o := newTestOIDC(t, f)
	s := newSignInFlow()
	code, _ := f.SignIn(t, s.authURL(o), "carol@example.com")
	id, err := o.Exchange(context.Background(), code, s.verifier, s.nonce, callback)
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != oidctest.SubjectOf("carol@example.com") || id.Email != "carol@example.com" {
		t.Fatalf("identity = %+v", id)
	}
}

// TestSignInThenDeviceConnects walks the whole path through New, as the
// command wires it: a user signs in on the web, and the access token the
// issuer gave out is then the device's assertion; both name the same
// stable subject, so grants made on the web hold for the device.
func TestSignInThenDeviceConnects(t *testing.T) {
	f := oidctest.NewIssuer(t)
	v, cf, err := New(context.Background(), presence.AuthConfig{
		Verifier:         "oidc",
		OIDCIssuer:       f.URL,
		OIDCClientID:     f.ClientID,
		OIDCClientSecret: f.ClientSecret,
		Audience:         "https://presence.test",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cf == nil {
		t.Fatal("oidc gave no code flow")
	}
	s := newSignInFlow()
	code, _ := f.SignIn(t, s.authURL(cf), "dana@example.com")
	web, err := cf.Exchange(context.Background(), code, s.verifier, s.nonce, callback)
	if err != nil {
		t.Fatal(err)
	}
	device, err := v.Verify(context.Background(), f.LastAccessToken())
	if err != nil {
		t.Fatal(err)
	}
	if device.Subject != web.Subject || device.Subject == "" {
		t.Fatalf("device subject %q, web subject %q", device.Subject, web.Subject)
	}
}
