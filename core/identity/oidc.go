package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/presence-service/presence/core"
)

// Defaults of the knobs that presence.toml does not expose.
const (
	// DefaultTimeout bounds each request to an identity provider, so a
	// provider that stops answering costs a device one errno 34, not a hang.
	DefaultTimeout = 5 * time.Second
	// DefaultLeeway is the clock skew allowed on a token's nbf.
	DefaultLeeway = time.Minute
)

// allowedAlgs are the JWS algorithms a token may be signed with: public-key
// ones only. "none" would accept anything, and HMAC would let whoever holds
// the issuer's *public* key (everyone) forge tokens if a key were ever used
// as an HMAC secret; both are refused before any key is looked at.
var allowedAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512,
	oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.EdDSA,
}

// OIDCConfig configures an OpenID Connect issuer (auth.verifier = "oidc").
type OIDCConfig struct {
	Issuer       string // auth.oidc_issuer, e.g. https://accounts.firefox.com
	ClientID     string // auth.oidc_client_id
	ClientSecret string // auth.oidc_client_secret; empty for a public client (PKCE only)
	// Audience is auth.audience: a device assertion may name it or ClientID
	// as its aud. ID tokens of the web sign-in must name ClientID.
	Audience string
	Scopes   []string // nil: openid, email, profile

	Timeout    time.Duration    // per request to the issuer; 0: DefaultTimeout
	Leeway     time.Duration    // skew allowed on nbf; 0: DefaultLeeway
	HTTPClient *http.Client     // nil: a client whose Timeout is Timeout
	Now        func() time.Time // nil: time.Now
}

// OIDC verifies JWTs of one OpenID Connect issuer and runs its web sign-in.
// It implements core.Verifier and core.CodeFlow and is safe for concurrent
// use. Keys are fetched from the issuer's jwks_uri, cached, and fetched
// again when a token names a key id the cache does not hold (go-oidc's
// RemoteKeySet), which is how issuers rotate keys.
type OIDC struct {
	cfg       OIDCConfig
	client    *http.Client
	provider  *oidc.Provider
	endpoint  oauth2.Endpoint
	userInfo  string // userinfo_endpoint; empty when the issuer has none
	verifier  *oidc.IDTokenVerifier
	audiences []string // accepted aud of device assertions
}

var (
	_ core.Verifier = (*OIDC)(nil)
	_ core.CodeFlow = (*OIDC)(nil)
)

// NewOIDC fetches the issuer's discovery document. It fails when the issuer
// is unreachable or names itself differently, so that a wrong auth.oidc_issuer
// stops the server at start rather than failing every connect later.
func NewOIDC(ctx context.Context, cfg OIDCConfig) (*OIDC, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" {
		return nil, errors.New("oidc: issuer and client id are required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Scopes == nil {
		cfg.Scopes = []string{oidc.ScopeOpenID, "email", "profile"}
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: cfg.Timeout}
	}
	// go-oidc and oauth2 take their HTTP client from the context.
	ctx = oidc.ClientContext(ctx, client)
	dctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	provider, err := oidc.NewProvider(dctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc: discovery of %s: %w", cfg.Issuer, err)
	}
	var meta struct {
		JWKSURL     string `json:"jwks_uri"`
		UserInfoURL string `json:"userinfo_endpoint"`
	}
	if err := provider.Claims(&meta); err != nil || meta.JWKSURL == "" {
		return nil, fmt.Errorf("oidc: discovery of %s: no jwks_uri", cfg.Issuer)
	}
	// The key set keeps ctx (without its cancel) for its background fetches,
	// so it fetches with client, whose Timeout bounds each fetch.
	keys := recordingKeySet{oidc.NewRemoteKeySet(ctx, meta.JWKSURL)}
	verifier := oidc.NewVerifier(cfg.Issuer, keys, &oidc.Config{
		SupportedSigningAlgs: allowedAlgs,
		// The claims are checked in checkClaims instead, so that each failure
		// gets its own reason and errno (35 for expiry), the audience may be
		// one of two values, and nbf gets our leeway rather than go-oidc's
		// fixed five minutes. Signature and algorithm stay go-oidc's.
		SkipClientIDCheck: true,
		SkipExpiryCheck:   true,
		SkipIssuerCheck:   true,
	})
	audiences := []string{cfg.ClientID}
	if cfg.Audience != "" && cfg.Audience != cfg.ClientID {
		audiences = append(audiences, cfg.Audience)
	}
	return &OIDC{
		cfg:       cfg,
		client:    client,
		provider:  provider,
		endpoint:  provider.Endpoint(),
		userInfo:  meta.UserInfoURL,
		verifier:  verifier,
		audiences: audiences,
	}, nil
}

// Verify checks a device assertion: a JWT signed by one of the issuer's
// keys, issued by the issuer, for this service, and current.
func (o *OIDC) Verify(ctx context.Context, assertion string) (core.Identity, error) {
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, o.client), o.cfg.Timeout)
	defer cancel()
	tok, c, err := o.verify(ctx, assertion, o.audiences)
	if err != nil {
		return core.Identity{}, err
	}
	return core.Identity{Subject: tok.Subject, Email: c.displayEmail(), Expires: tok.Expiry}, nil
}

// tokenClaims are the claims beyond those go-oidc's IDToken carries.
type tokenClaims struct {
	Email         string       `json:"email"`
	EmailVerified *bool        `json:"email_verified"`
	NotBefore     *json.Number `json:"nbf"`
	AuthorizedBy  string       `json:"azp"`
}

// displayEmail is the email unless the issuer says it is unverified: the
// email is only for display, but admin.emails matches on it, so an address
// nobody proved to own must not stand in for one.
func (c tokenClaims) displayEmail() string {
	if c.EmailVerified != nil && !*c.EmailVerified {
		return ""
	}
	return strings.ToLower(c.Email)
}

// verify checks signature and algorithm (go-oidc), then the claims, and
// returns the token with the extra claims.
func (o *OIDC) verify(ctx context.Context, raw string, audiences []string) (*oidc.IDToken, tokenClaims, error) {
	var c tokenClaims
	if raw == "" {
		return nil, c, core.Errorf(core.ErrnoInvalidAssertion, "invalid assertion: empty")
	}
	alg, err := headerAlg(raw)
	if err != nil {
		return nil, c, &core.Error{Errno: core.ErrnoInvalidAssertion, Reason: "invalid assertion: not a JWT", Err: err}
	}
	if !slices.Contains(allowedAlgs, alg) {
		return nil, c, core.Errorf(core.ErrnoInvalidAssertion, "invalid assertion: signing algorithm %q not allowed", alg)
	}
	rec := &keysOutcome{}
	tok, err := o.verifier.Verify(context.WithValue(ctx, keysOutcomeKey{}, rec), raw)
	if err != nil {
		reason := "invalid assertion: malformed JWT"
		switch {
		case rec.unavailable():
			reason = "identity provider unavailable"
		case rec.err != nil:
			reason = "invalid assertion: bad signature"
		}
		return nil, c, &core.Error{Errno: core.ErrnoInvalidAssertion, Reason: reason, Err: err}
	}
	if err := tok.Claims(&c); err != nil {
		return nil, c, &core.Error{Errno: core.ErrnoInvalidAssertion, Reason: "invalid assertion: malformed claims", Err: err}
	}
	if err := o.checkClaims(tok, c, audiences); err != nil {
		return nil, c, err
	}
	return tok, c, nil
}

// checkClaims checks issuer, audience, subject, expiry and not-before, in
// that order, so an expired token of another service reads "wrong
// audience", not "expired": a new token would not help it.
func (o *OIDC) checkClaims(tok *oidc.IDToken, c tokenClaims, audiences []string) error {
	invalid := func(format string, args ...any) error {
		return core.Errorf(core.ErrnoInvalidAssertion, "invalid assertion: "+format, args...)
	}
	if tok.Issuer != o.cfg.Issuer {
		return invalid("issued by %q, not %q", tok.Issuer, o.cfg.Issuer)
	}
	if !slices.ContainsFunc(tok.Audience, func(a string) bool { return slices.Contains(audiences, a) }) {
		return invalid("wrong audience")
	}
	// With several audiences, azp names the party the token is for
	// (OpenID Connect Core 3.1.3.7).
	if len(tok.Audience) > 1 && c.AuthorizedBy != "" && !slices.Contains(audiences, c.AuthorizedBy) {
		return invalid("wrong authorized party")
	}
	if tok.Subject == "" {
		return invalid("no subject")
	}
	now := o.cfg.Now()
	if tok.Expiry.IsZero() {
		return invalid("no expiry")
	}
	if !now.Before(tok.Expiry) {
		return core.Errorf(core.ErrnoExpiredAssertion, "assertion expired at %s", tok.Expiry.UTC().Format(time.RFC3339))
	}
	if c.NotBefore != nil {
		f, err := c.NotBefore.Float64()
		if err != nil {
			return invalid("malformed nbf")
		}
		nbf := time.Unix(int64(f), 0)
		if now.Add(o.cfg.Leeway).Before(nbf) {
			return invalid("not valid before %s", nbf.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// headerAlg reads the alg of a compact JWS without trusting anything else
// in it, so a refused algorithm gets a reason of its own.
func headerAlg(raw string) (string, error) {
	head, _, ok := strings.Cut(raw, ".")
	if !ok {
		return "", errors.New("no dot")
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return "", fmt.Errorf("header: %w", err)
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return "", fmt.Errorf("header: %w", err)
	}
	return h.Alg, nil
}
