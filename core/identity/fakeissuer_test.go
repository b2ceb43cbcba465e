package identity

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

// fakeIssuer is an in-process OpenID Connect issuer: discovery, JWKS with
// key rotation, an authorization endpoint with a login page, a token
// endpoint that checks PKCE, and userinfo. It signs with go-jose.
type fakeIssuer struct {
	t            testing.TB
	srv          *httptest.Server
	URL          string
	clientID     string
	clientSecret string

	mu             sync.Mutex   // guards: keys, signer, jwksFetches, jwksDown, emailInIDToken, logins, codes, accessTokens, lastAccess
	keys           []signingKey // published in the JWKS
	signer         signingKey   // signs what the issuer issues
	jwksFetches    int
	jwksDown       bool
	emailInIDToken bool
	logins         map[string]*authRequest // login page id → request
	codes          map[string]*authRequest // code → request, until redeemed
	accessTokens   map[string]*authRequest // access token → the sign-in it came from
	lastAccess     string
}

type signingKey struct {
	kid  string
	priv *rsa.PrivateKey
}

type authRequest struct {
	redirectURI, state, nonce, challenge string
	sub, email                           string
}

func newFakeIssuer(t testing.TB) *fakeIssuer {
	t.Helper()
	f := &fakeIssuer{
		t:              t,
		clientID:       "presence-client",
		clientSecret:   "s3cret",
		emailInIDToken: true,
		logins:         map[string]*authRequest{},
		codes:          map[string]*authRequest{},
		accessTokens:   map[string]*authRequest{},
	}
	f.signer = newSigningKey(t, "k1")
	f.keys = []signingKey{f.signer}
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

func newSigningKey(t testing.TB, kid string) signingKey {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid: kid, priv: priv}
}

// rotate makes a new key the signer and publishes only it, as an issuer
// does once the old key's tokens have expired.
func (f *fakeIssuer) rotate(kid string) {
	k := newSigningKey(f.t, kid)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signer = k
	f.keys = []signingKey{k}
}

func (f *fakeIssuer) fetches() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.jwksFetches
}

func (f *fakeIssuer) setJWKSDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jwksDown = down
}

func (f *fakeIssuer) setEmailInIDToken(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.emailInIDToken = on
}

func (f *fakeIssuer) lastAccessToken() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastAccess
}

// claims returns valid claims of a device token for sub.
func (f *fakeIssuer) claims(sub string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss":   f.URL,
		"sub":   sub,
		"aud":   f.clientID,
		"iat":   now.Unix(),
		"exp":   now.Add(time.Hour).Unix(),
		"email": sub + "@example.com",
	}
}

// mint signs claims with the current signer.
func (f *fakeIssuer) mint(claims map[string]any) string {
	f.mu.Lock()
	k := f.signer
	f.mu.Unlock()
	return signJWT(f.t, jose.RS256, jose.JSONWebKey{Key: k.priv, KeyID: k.kid}, claims)
}

func signJWT(t testing.TB, alg jose.SignatureAlgorithm, key jose.JSONWebKey, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fakeIssuer) discovery(w http.ResponseWriter, _ *http.Request) {
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

func (f *fakeIssuer) jwks(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jwksFetches++
	if f.jwksDown {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	var set jose.JSONWebKeySet
	for _, k := range f.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.priv.PublicKey, KeyID: k.kid, Algorithm: string(jose.RS256), Use: "sig"})
	}
	writeJSON(w, http.StatusOK, set)
}

// authorize checks the request the relying party built and sends the
// browser to the login page.
func (f *fakeIssuer) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case q.Get("response_type") != "code":
		http.Error(w, "response_type must be code", http.StatusBadRequest)
		return
	case q.Get("client_id") != f.clientID:
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

func (f *fakeIssuer) loginPage(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, `<form method="post" action="/login"><input type="hidden" name="req" value="%s"><input name="email"></form>`,
		html.EscapeString(r.URL.Query().Get("req")))
}

// login "authenticates" whoever types an email and sends the browser back
// to the relying party with a code. The subject is derived from the email
// the way an account id is fixed at sign-up.
func (f *fakeIssuer) login(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	req, ok := f.logins[r.FormValue("req")]
	delete(f.logins, r.FormValue("req"))
	f.mu.Unlock()
	email := r.FormValue("email")
	if !ok || email == "" {
		http.Error(w, "no such login", http.StatusBadRequest)
		return
	}
	req.email = email
	req.sub = subjectOf(email)
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

func subjectOf(email string) string {
	sum := sha256.Sum256([]byte(email))
	return "fxa-" + hex.EncodeToString(sum[:8])
}

// token redeems a code once, checking the client, the redirect URI and the
// PKCE verifier against the challenge of the authorization request.
func (f *fakeIssuer) token(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.FormValue("client_id"), r.FormValue("client_secret")
	}
	if id != f.clientID || secret != f.clientSecret {
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
	access := f.mint(f.claims(req.sub))
	c := f.claims(req.sub)
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
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": access,
		"token_type":   "Bearer",
		"expires_in":   3600,
		"id_token":     f.mint(c),
	})
}

func atHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

func (f *fakeIssuer) userinfo(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	req, ok := f.accessTokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	f.mu.Unlock()
	if !ok {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"sub": req.sub, "email": req.email})
}

// signIn plays the browser: it follows AuthCodeURL to the login page, logs
// in as email, and returns the code and state sent to the redirect URI.
func (f *fakeIssuer) signIn(t testing.TB, authURL, email string) (code, state string) {
	t.Helper()
	browser := &http.Client{CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), f.URL) {
			return http.ErrUseLastResponse // back at the relying party
		}
		return nil
	}}
	resp, err := browser.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/login" {
		t.Fatalf("authorize: %s at %s", resp.Status, resp.Request.URL)
	}
	resp, err = browser.PostForm(f.URL+"/login", url.Values{"req": {resp.Request.URL.Query().Get("req")}, "email": {email}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("login: %s, no redirect: %v", resp.Status, err)
	}
	return loc.Query().Get("code"), loc.Query().Get("state")
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
