package identity

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/internal/oidctest"
)

func newTestOIDC(t testing.TB, f *oidctest.Issuer, mod ...func(*OIDCConfig)) *OIDC {
	t.Helper()
	cfg := OIDCConfig{Issuer: f.URL, ClientID: f.ClientID, ClientSecret: f.ClientSecret, Audience: "https://presence.test"}
	for _, m := range mod {
		m(&cfg)
	}
	o, err := NewOIDC(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// wantErr checks that err is a *core.Error with errno and a reason that
// contains reason.
func wantErr(t testing.TB, err error, errno core.Errno, reason string) {
	t.Helper()
	var e *core.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *core.Error errno %d", err, err, errno)
	}
	if e.Errno != errno || !strings.Contains(core.ReasonOf(err), reason) {
		t.Fatalf("err = %v, want errno %d with reason containing %q", err, errno, reason)
	}
}

func TestOIDCVerify(t *testing.T) {
	f := oidctest.NewIssuer(t)
	o := newTestOIDC(t, f)
	ctx := context.Background()
	now := time.Now()
	with := func(edit func(map[string]any)) string {
		c := f.Claims("uid-alice")
		edit(c)
		return f.Mint(c)
	}
	stranger := oidctest.NewKey(t, "k1") // same kid as the issuer's key, other key
	der, err := x509.MarshalPKIXPublicKey(f.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	claimsJSON, _ := json.Marshal(f.Claims("uid-alice"))
	b64 := base64.RawURLEncoding.EncodeToString

	tests := []struct {
		name      string
		token     string
		errno     core.Errno // 0: valid
		reason    string
		wantEmail string
	}{
		{name: "valid", token: with(func(map[string]any) {}), wantEmail: "uid-alice@example.com"},
		{name: "audience is auth.audience", token: with(func(c map[string]any) { c["aud"] = []string{"https://presence.test"} }), wantEmail: "uid-alice@example.com"},
		{name: "nbf within leeway", token: with(func(c map[string]any) { c["nbf"] = now.Add(30 * time.Second).Unix() }), wantEmail: "uid-alice@example.com"},
		{name: "unverified email not shown", token: with(func(c map[string]any) { c["email_verified"] = false }), wantEmail: ""},
		{name: "expired", token: with(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() }),
			errno: core.ErrnoExpiredAssertion, reason: "expired"},
		{name: "wrong audience", token: with(func(c map[string]any) { c["aud"] = "someone-else" }),
			errno: core.ErrnoInvalidAssertion, reason: "wrong audience"},
		{name: "wrong audience beats expired", token: with(func(c map[string]any) {
			c["aud"] = "someone-else"
			c["exp"] = now.Add(-time.Hour).Unix()
		}), errno: core.ErrnoInvalidAssertion, reason: "wrong audience"},
		{name: "wrong issuer", token: with(func(c map[string]any) { c["iss"] = "https://evil.example" }),
			errno: core.ErrnoInvalidAssertion, reason: "issued by"},
		{name: "nbf in the future", token: with(func(c map[string]any) { c["nbf"] = now.Add(10 * time.Minute).Unix() }),
			errno: core.ErrnoInvalidAssertion, reason: "not valid before"},
		{name: "no expiry", token: with(func(c map[string]any) { delete(c, "exp") }),
			errno: core.ErrnoInvalidAssertion, reason: "no expiry"},
		{name: "no subject", token: with(func(c map[string]any) { delete(c, "sub") }),
			errno: core.ErrnoInvalidAssertion, reason: "no subject"},
		{name: "bad signature", token: oidctest.SignJWT(t, jose.RS256, jose.JSONWebKey{Key: stranger.Private, KeyID: "k1"}, f.Claims("uid-alice")),
			errno: core.ErrnoInvalidAssertion, reason: "bad signature"},
		{name: "tampered payload", token: func() string {
			parts := strings.Split(with(func(map[string]any) {}), ".")
			c := f.Claims("uid-mallory")
			b, _ := json.Marshal(c)
			return parts[0] + "." + b64(b) + "." + parts[2]
		}(), errno: core.ErrnoInvalidAssertion, reason: "bad signature"},
		{name: "alg none", token: b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64(claimsJSON) + ".",
			errno: core.ErrnoInvalidAssertion, reason: `algorithm "none" not allowed`},
		{name: "HS256 keyed with the public key", token: oidctest.SignJWT(t, jose.HS256, jose.JSONWebKey{Key: der, KeyID: "k1"}, f.Claims("uid-alice")),
			errno: core.ErrnoInvalidAssertion, reason: `algorithm "HS256" not allowed`},
		{name: "not a JWT", token: "hello", errno: core.ErrnoInvalidAssertion, reason: "not a JWT"},
		{name: "empty", token: "", errno: core.ErrnoInvalidAssertion, reason: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := o.Verify(ctx, tt.token)
			if tt.errno != 0 {
				wantErr(t, err, tt.errno, tt.reason)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.Subject != "uid-alice" || id.Email != tt.wantEmail || id.Expires.IsZero() {
				t.Fatalf("identity = %+v", id)
			}
		})
	}
}

// TestKeyRotation confirms that go-oidc's RemoteKeySet caches the JWKS and
// fetches it again when a token names a key id it has not seen.
func TestKeyRotation(t *testing.T) {
	f := oidctest.NewIssuer(t)
	o := newTestOIDC(t, f)
	ctx := context.Background()

	if _, err := o.Verify(ctx, f.Mint(f.Claims("uid-alice"))); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Verify(ctx, f.Mint(f.Claims("uid-bob"))); err != nil {
		t.Fatal(err)
	}
	if n := f.JWKSFetches(); n != 1 {
		t.Fatalf("JWKS fetched %d times for two tokens of one key, want 1 (cached)", n)
	}

	f.Rotate("k2")
	id, err := o.Verify(ctx, f.Mint(f.Claims("uid-carol")))
	if err != nil {
		t.Fatalf("token of the rotated key: %v", err)
	}
	if id.Subject != "uid-carol" {
		t.Fatalf("subject %q", id.Subject)
	}
	if n := f.JWKSFetches(); n != 2 {
		t.Fatalf("JWKS fetched %d times after rotation, want 2", n)
	}
	if _, err := o.Verify(ctx, f.Mint(f.Claims("uid-dave"))); err != nil {
		t.Fatal(err)
	}
	if n := f.JWKSFetches(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want the new key cached", n)
	}

	// A kid the issuer never published: one more fetch, then refused.
	ghost := oidctest.NewKey(t, "ghost")
	_, err = o.Verify(ctx, oidctest.SignJWT(t, jose.RS256, jose.JSONWebKey{Key: ghost.Private, KeyID: "ghost"}, f.Claims("uid-alice")))
	wantErr(t, err, core.ErrnoInvalidAssertion, "bad signature")
	if n := f.JWKSFetches(); n != 3 {
		t.Fatalf("JWKS fetched %d times, want a refresh for the unknown kid", n)
	}
}

// TestJWKSDown: when the keys cannot be fetched the device is told the
// provider is unavailable, not that its token is bad.
func TestJWKSDown(t *testing.T) {
	f := oidctest.NewIssuer(t)
	o := newTestOIDC(t, f)
	f.SetJWKSDown(true)
	_, err := o.Verify(context.Background(), f.Mint(f.Claims("uid-alice")))
	wantErr(t, err, core.ErrnoInvalidAssertion, "identity provider unavailable")

	f.SetJWKSDown(false)
	// go-oidc wakes the callers of a failed key fetch before its fetching
	// goroutine lets go of it (jwks.go, keysFromRemote): a call in between
	// gets the old failure without asking the issuer. The next fetch must
	// succeed, so within a bounded wait one call does.
	token := f.Mint(f.Claims("uid-alice"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := o.Verify(context.Background(), token)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after the JWKS came back: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestNewOIDCIssuerMismatch(t *testing.T) {
	f := oidctest.NewIssuer(t)
	// The discovery document names f.URL, not f.URL + "/".
	if _, err := NewOIDC(context.Background(), OIDCConfig{Issuer: f.URL + "/", ClientID: "x"}); err == nil {
		t.Fatal("an issuer that names itself differently was accepted")
	}
	if _, err := NewOIDC(context.Background(), OIDCConfig{Issuer: f.URL + "/nowhere", ClientID: "x"}); err == nil {
		t.Fatal("an issuer without discovery was accepted")
	}
	if _, err := NewOIDC(context.Background(), OIDCConfig{Issuer: f.URL}); err == nil {
		t.Fatal("no client id accepted")
	}
}

// TestLibraryRefusesHMACAndNone pins the second line of defence: even past
// headerAlg, go-oidc's verifier (with allowedAlgs) refuses both attacks.
func TestLibraryRefusesHMACAndNone(t *testing.T) {
	f := oidctest.NewIssuer(t)
	o := newTestOIDC(t, f)
	der, err := x509.MarshalPKIXPublicKey(f.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	claimsJSON, _ := json.Marshal(f.Claims("uid-alice"))
	b64 := base64.RawURLEncoding.EncodeToString
	for name, tok := range map[string]string{
		"HS256": oidctest.SignJWT(t, jose.HS256, jose.JSONWebKey{Key: der, KeyID: "k1"}, f.Claims("uid-alice")),
		"none":  b64([]byte(`{"alg":"none"}`)) + "." + b64(claimsJSON) + ".",
	} {
		if _, err := o.verifier.Verify(context.Background(), tok); err == nil {
			t.Errorf("go-oidc accepted alg %s", name)
		}
	}
}
