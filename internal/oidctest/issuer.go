package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Default client registration of a new Issuer.
const (
	ClientID     = "presence-client"
	ClientSecret = "s3cret"
)

// Issuer is an in-process OpenID Connect issuer. It signs with RS256
// (go-jose) under a key id that Rotate changes. Its methods are safe for
// concurrent use.
type Issuer struct {
	URL          string // the issuer identifier and base of every endpoint
	ClientID     string // the one client it knows
	ClientSecret string

	t   testing.TB
	srv *httptest.Server

	mu             sync.Mutex // guards: keys, signer, jwksFetches, jwksDown, emailInIDToken, accounts, subjects, logins, codes, accessTokens, lastAccess
	keys           []Key      // published in the JWKS
	signer         Key        // signs what the issuer issues
	jwksFetches    int
	jwksDown       bool
	emailInIDToken bool
	accounts       map[string]string       // email → subject
	subjects       map[string]bool         // every subject given out
	logins         map[string]*authRequest // login page id → request
	codes          map[string]*authRequest // code → request, until redeemed
	accessTokens   map[string]*authRequest // access token → the sign-in it came from
	lastAccess     string
}

// Key is a signing key and the key id it is published under.
type Key struct {
	ID      string
	Private *rsa.PrivateKey
}

// JWK is the key as go-jose signs with it.
func (k Key) JWK() jose.JSONWebKey { return jose.JSONWebKey{Key: k.Private, KeyID: k.ID} }

type authRequest struct {
	redirectURI, state, nonce, challenge string
	sub, email                           string
}

// NewIssuer starts an issuer that the test's cleanup stops. It knows the
// client ClientID with ClientSecret and signs with key "k1".
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	f := &Issuer{
		ClientID:       ClientID,
		ClientSecret:   ClientSecret,
		t:              t,
		emailInIDToken: true,
		accounts:       map[string]string{},
		subjects:       map[string]bool{},
		logins:         map[string]*authRequest{},
		codes:          map[string]*authRequest{},
		accessTokens:   map[string]*authRequest{},
	}
	f.signer = NewKey(t, "k1")
	f.keys = []Key{f.signer}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", f.discovery)
	mux.HandleFunc("GET /jwks", f.jwks)
	mux.HandleFunc("GET /authorize", f.authorize)
	mux.HandleFunc("GET /login", f.loginPage)
	mux.HandleFunc("POST /login", f.login)
	mux.HandleFunc("POST /token", f.token)
	mux.HandleFunc("GET /userinfo", f.userinfo)
	f.srv = httptest.NewServer(mux)
	f.URL = f.srv.URL
	t.Cleanup(f.srv.Close)
	return f
}

// NewKey makes a 2048-bit RSA key with key id kid.
func NewKey(t testing.TB, kid string) Key {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return Key{ID: kid, Private: priv}
}

// Rotate makes a new key the signer and publishes only it, as an issuer
// does once the old key's tokens have expired.
func (f *Issuer) Rotate(kid string) {
	k := NewKey(f.t, kid)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signer = k
	f.keys = []Key{k}
}

// PublicKey is the public half of the current signing key.
func (f *Issuer) PublicKey() *rsa.PublicKey {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &f.signer.Private.PublicKey
}

// JWKSFetches counts the requests to the JWKS so far.
func (f *Issuer) JWKSFetches() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.jwksFetches
}

// SetJWKSDown makes the JWKS answer 503 (true) or work again (false).
func (f *Issuer) SetJWKSDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jwksDown = down
}

// SetEmailInIDToken off leaves the email out of ID tokens, so that a
// relying party must ask userinfo, as with Firefox Accounts.
func (f *Issuer) SetEmailInIDToken(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.emailInIDToken = on
}

// LastAccessToken is the access token of the latest code redeemed.
func (f *Issuer) LastAccessToken() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastAccess
}

// SubjectOf is the subject an account created for email gets: fixed at
// sign-up, like an FxA uid, and independent of later email changes.
func SubjectOf(email string) string {
	sum := sha256.Sum256([]byte(email))
	return "fxa-" + hex.EncodeToString(sum[:8])
}

// Subject is the subject of the account with this email, which is created
// when there is none yet, with subject SubjectOf(email) unless an earlier
// account (since moved to another email) holds that one.
func (f *Issuer) Subject(email string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accountLocked(email)
}

func (f *Issuer) accountLocked(email string) string {
	if sub, ok := f.accounts[email]; ok {
		return sub
	}
	// A subject is never given twice: after ChangeEmail moved the old
	// address's account away, a new sign-up with the old address is
	// somebody else.
	sub := SubjectOf(email)
	for i := 2; f.subjects[sub]; i++ {
		sub = SubjectOf(fmt.Sprintf("%s#%d", email, i))
	}
	f.accounts[email] = sub
	f.subjects[sub] = true
	return sub
}

// ChangeEmail gives the account of oldEmail the address newEmail; its
// subject stays. It returns the subject.
func (f *Issuer) ChangeEmail(oldEmail, newEmail string) string {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, taken := f.accounts[newEmail]; taken {
		f.t.Fatalf("oidctest: %s already has an account", newEmail)
	}
	sub := f.accountLocked(oldEmail)
	delete(f.accounts, oldEmail)
	f.accounts[newEmail] = sub
	return sub
}

// Claims returns valid claims of a device token for sub: issued by f, for
// f.ClientID, for an hour, with email sub@example.com.
func (f *Issuer) Claims(sub string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss":   f.URL,
		"sub":   sub,
		"aud":   f.ClientID,
		"iat":   now.Unix(),
		"exp":   now.Add(time.Hour).Unix(),
		"email": sub + "@example.com",
	}
}

// Mint signs claims with the current signing key.
func (f *Issuer) Mint(claims map[string]any) string {
	f.t.Helper()
	s, err := f.sign(claims)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *Issuer) sign(claims map[string]any) (string, error) {
	f.mu.Lock()
	k := f.signer
	f.mu.Unlock()
	return signJWT(jose.RS256, k.JWK(), claims)
}

// AccessToken mints an access token for sub with a verified email that
// expires after ttl (a negative ttl gives one that expired already).
func (f *Issuer) AccessToken(sub, email string, ttl time.Duration) string {
	f.t.Helper()
	c := f.Claims(sub)
	c["email"], c["email_verified"] = email, true
	if ttl < 0 {
		c["iat"] = time.Now().Add(2 * ttl).Unix()
	}
	c["exp"] = time.Now().Add(ttl).Unix()
	return f.Mint(c)
}

// SignJWT signs claims as a compact JWS with alg and key, whatever they
// are: tests use it to forge tokens (a stranger's key, HS256, …).
func SignJWT(t testing.TB, alg jose.SignatureAlgorithm, key jose.JSONWebKey, claims map[string]any) string {
	t.Helper()
	s, err := signJWT(alg, key, claims)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func signJWT(alg jose.SignatureAlgorithm, key jose.JSONWebKey, claims map[string]any) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

func (f *Issuer) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                f.URL,
		"authorization_endpoint":                f.URL + "/authorize",
		"token_endpoint":                        f.URL + "/token",
		"jwks_uri":                              f.URL + "/jwks",
		"userinfo_endpoint":                     f.URL + "/userinfo",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"code_challenge_methods_supported":      []string{"S256"},
		"scopes_supported":                      []string{"openid", "profile", "email"},
	})
}

func (f *Issuer) jwks(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jwksFetches++
	if f.jwksDown {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	var set jose.JSONWebKeySet
	for _, k := range f.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.Private.PublicKey, KeyID: k.ID, Algorithm: string(jose.RS256), Use: "sig"})
	}
	writeJSON(w, http.StatusOK, set)
}

// authorize checks the request the relying party built and sends the
// browser to the login page.
func (f *Issuer) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case q.Get("response_type") != "code":
		http.Error(w, "response_type must be code", http.StatusBadRequest)
		return
	case q.Get("client_id") != f.ClientID:
		http.Error(w, "unknown client", http.StatusBadRequest)
		return
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		http.Error(w, "PKCE S256 required", http.StatusBadRequest)
		return
	case q.Get("state") == "" || q.Get("nonce") == "" || q.Get("redirect_uri") == "":
		http.Error(w, "state, nonce and redirect_uri required", http.StatusBadRequest)
		return
	case !strings.Contains(" "+q.Get("scope")+" ", " openid "):
		http.Error(w, "scope must include openid", http.StatusBadRequest)
		return
	}
	id := randomID()
	f.mu.Lock()
	f.logins[id] = &authRequest{redirectURI: q.Get("redirect_uri"), state: q.Get("state"), nonce: q.Get("nonce"), challenge: q.Get("code_challenge")}
	f.mu.Unlock()
	http.Redirect(w, r, "/login?req="+id, http.StatusSeeOther)
}

func (f *Issuer) loginPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<form method="post" action="/login"><input type="hidden" name="req" value="%s"><input name="email"></form>`,
		html.EscapeString(r.URL.Query().Get("req")))
}

// login "authenticates" whoever types an email and sends the browser back
// to the relying party with a code, for the account of that email.
func (f *Issuer) login(w http.ResponseWriter, r *http.Request) {
	email := r.FormValue("email")
	f.mu.Lock()
	req, ok := f.logins[r.FormValue("req")]
	delete(f.logins, r.FormValue("req"))
	if ok && email != "" {
		req.email = email
		req.sub = f.accountLocked(email)
	}
	f.mu.Unlock()
	if !ok || email == "" {
		http.Error(w, "no such login", http.StatusBadRequest)
		return
	}
	code := randomID()
	f.mu.Lock()
	f.codes[code] = req
	f.mu.Unlock()
	u, _ := url.Parse(req.redirectURI)
	v := u.Query()
	v.Set("code", code)
	v.Set("state", req.state)
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// token redeems a code once, checking the client, the redirect URI and the
// PKCE verifier against the challenge of the authorization request.
func (f *Issuer) token(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.FormValue("client_id"), r.FormValue("client_secret")
	}
	if id != f.ClientID || secret != f.ClientSecret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	if r.FormValue("grant_type") != "authorization_code" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	f.mu.Lock()
	req, ok := f.codes[r.FormValue("code")]
	delete(f.codes, r.FormValue("code"))
	f.mu.Unlock()
	sum := sha256.Sum256([]byte(r.FormValue("code_verifier")))
	if !ok || r.FormValue("redirect_uri") != req.redirectURI ||
		base64.RawURLEncoding.EncodeToString(sum[:]) != req.challenge {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
		return
	}
	access, err := f.sign(f.Claims(req.sub))
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	c := f.Claims(req.sub)
	c["nonce"] = req.nonce
	c["at_hash"] = atHash(access)
	f.mu.Lock()
	if f.emailInIDToken {
		c["email"], c["email_verified"] = req.email, true
	} else {
		delete(c, "email")
	}
	f.accessTokens[access] = req
	f.lastAccess = access
	f.mu.Unlock()
	idToken, err := f.sign(c)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": access,
		"token_type":   "Bearer",
		"expires_in":   3600,
		"id_token":     idToken,
	})
}

func atHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

func (f *Issuer) userinfo(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	req, ok := f.accessTokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	f.mu.Unlock()
	if !ok {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"sub": req.sub, "email": req.email})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func randomID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}
