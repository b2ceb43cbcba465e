package core

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

// Identity is who a verifier vouches for: Subject is the stable id (an
// email in dev and browserid mode, the FxA uid under oidc); Email is for
// display and may change without losing grants.
type Identity struct {
	Subject string
	Email   string
	Expires time.Time // zero when the credential does not say
}

// Verifier checks a device's assertion. Errors are *Error with errno 34
// (invalid) or 35 (expired) and a reason a user can read.
type Verifier interface {
	Verify(ctx context.Context, assertion string) (Identity, error)
}

// CodeFlow is the web sign-in of a verifier that has one (OpenID Connect):
// the admin pages redirect to AuthCodeURL and come back to Exchange.
type CodeFlow interface {
	AuthCodeURL(state, nonce, codeChallenge, redirectURL string) string
	Exchange(ctx context.Context, code, codeVerifier, nonce, redirectURL string) (Identity, error)
}

// DevVerifier checks tokens minted by `presence token`: base64url JSON
// claims, a dot, base64url HMAC-SHA256 of the claims under the dev secret.
// It is for the embedded default and for tests, never for production.
type DevVerifier struct {
	Secret []byte
	Now    func() time.Time // nil: time.Now
}

type devClaims struct {
	Email string `json:"email"`
	Exp   int64  `json:"exp"`
}

// Mint returns a token for email that expires after ttl.
func (v *DevVerifier) Mint(email string, ttl time.Duration) string {
	claims, _ := json.Marshal(devClaims{Email: email, Exp: v.now().Add(ttl).Unix()})
	payload := base64.RawURLEncoding.EncodeToString(claims)
	return payload + "." + base64.RawURLEncoding.EncodeToString(v.sign(payload))
}

// Verify checks the signature, then the expiry.
func (v *DevVerifier) Verify(_ context.Context, assertion string) (Identity, error) {
	payload, sig, ok := strings.Cut(assertion, ".")
	if !ok {
		return Identity{}, Errorf(ErrnoInvalidAssertion, "invalid assertion: not a dev token")
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, v.sign(payload)) {
		return Identity{}, Errorf(ErrnoInvalidAssertion, "invalid assertion: bad signature")
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return Identity{}, Errorf(ErrnoInvalidAssertion, "invalid assertion: bad claims")
	}
	var c devClaims
	if err := json.Unmarshal(raw, &c); err != nil || c.Email == "" {
		return Identity{}, Errorf(ErrnoInvalidAssertion, "invalid assertion: bad claims")
	}
	exp := time.Unix(c.Exp, 0)
	if !v.now().Before(exp) {
		return Identity{}, Errorf(ErrnoExpiredAssertion, "assertion expired at %s", exp.UTC().Format(time.RFC3339))
	}
	email := strings.ToLower(c.Email)
	return Identity{Subject: email, Email: email, Expires: exp}, nil
}

func (v *DevVerifier) sign(payload string) []byte {
	m := hmac.New(sha256.New, v.Secret)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

func (v *DevVerifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}
