package admin

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/presence-service/presence/core"
)

// Sign-in, by auth.verifier:
//   - dev: a form that asks for an email (PROTOCOL §8); anyone can be
//     anyone, which is why the server refuses dev off loopback without
//     server.dev.
//   - oidc: GET /login redirects to the issuer (code flow, PKCE S256, state,
//     nonce); GET /login/callback finishes it.
//   - browserid: a form that takes an assertion, checked by the verifier.

const oidcCookie = "presence_oidc"

// oidcTTL bounds a sign-in round trip through the identity provider.
const oidcTTL = 10 * time.Minute

type loginData struct {
	Mode      string // dev, browserid, oidc
	Next      string
	LoginCSRF string
	Error     string
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if s.codeFlow != nil {
		s.startCodeFlow(w, r, next)
		return
	}
	s.renderLogin(w, r, http.StatusOK, next, "")
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, next, msg string) {
	d := loginData{Mode: s.cfg.Auth.Verifier, Next: next, LoginCSRF: s.loginCSRF(w, r), Error: msg}
	s.render(w, r, status, "login", page{Title: "Sign in", Data: d})
}

// loginSubmit is the dev (email) and browserid (assertion) form.
func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	if !s.checkLoginCSRF(r) {
		s.fail(w, r, http.StatusForbidden, "This sign-in form has expired or did not come from this site. Reload the sign-in page and try again.")
		return
	}
	next := safeNext(r.PostFormValue("next"))
	var who core.Identity
	switch s.cfg.Auth.Verifier {
	case "dev":
		email, ok := checkEmail(r.PostFormValue("email"))
		if !ok {
			s.renderLogin(w, r, http.StatusBadRequest, next, "Enter an email address, such as you@example.com.")
			return
		}
		who = core.Identity{Subject: email, Email: email}
	case "browserid":
		if s.verifier == nil {
			s.fail(w, r, http.StatusNotFound, "Web sign-in is not available on this server.")
			return
		}
		id, err := s.verifier.Verify(r.Context(), strings.TrimSpace(r.PostFormValue("assertion")))
		if err != nil {
			s.renderLogin(w, r, http.StatusBadRequest, next, "Sign-in refused: "+core.ReasonOf(err))
			return
		}
		who = id
	default:
		s.fail(w, r, http.StatusNotFound, "This server signs in through its identity provider: use the sign-in link.")
		return
	}
	s.signIn(w, r, who)
	seeOther(w, r, next)
}

// checkEmail accepts one plain address, lower-cased (core.NormalizeEmail,
// which the CLI uses too).
func checkEmail(v string) (string, bool) {
	v, err := core.NormalizeEmail(v)
	return v, err == nil
}

// oidcState is kept in a short-lived HttpOnly cookie between /login and
// /login/callback, signed so that it cannot be planted.
type oidcState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Next     string `json:"x"`
	Expires  int64  `json:"e"`
}

func (s *Server) callbackURL() string {
	u := *s.public
	u.Path = strings.TrimSuffix(u.Path, "/") + "/login/callback"
	u.RawQuery, u.Fragment = "", ""
	return u.String()
}

func (s *Server) startCodeFlow(w http.ResponseWriter, r *http.Request, next string) {
	st := oidcState{State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier(),
		Next: next, Expires: s.router.Now().Add(oidcTTL).Unix()}
	raw, _ := json.Marshal(st)
	v := base64.RawURLEncoding.EncodeToString(raw)
	http.SetCookie(w, &http.Cookie{
		Name: oidcCookie, Value: v + "." + s.mac("oidc", v), Path: "/login", MaxAge: int(oidcTTL.Seconds()),
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode, // Lax: sent on the top-level return from the issuer
	})
	http.Redirect(w, r, s.codeFlow.AuthCodeURL(st.State, st.Nonce, oauth2.S256ChallengeFromVerifier(st.Verifier), s.callbackURL()), http.StatusSeeOther)
}

func (s *Server) loginCallback(w http.ResponseWriter, r *http.Request) {
	if s.codeFlow == nil {
		s.fail(w, r, http.StatusNotFound, "This server has no identity provider sign-in.")
		return
	}
	st, ok := s.readOIDCState(r)
	// The state cookie is single use, whatever happens next.
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: "", Path: "/login", MaxAge: -1,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
	q := r.URL.Query()
	if !ok || q.Get("state") == "" || !macEqual(hashOf(q.Get("state")), hashOf(st.State)) {
		s.fail(w, r, http.StatusBadRequest, "This sign-in attempt has expired or was not started here. Sign in again.")
		return
	}
	if e := q.Get("error"); e != "" {
		s.fail(w, r, http.StatusForbidden, "The identity provider refused the sign-in ("+e+").")
		return
	}
	who, err := s.codeFlow.Exchange(r.Context(), q.Get("code"), st.Verifier, st.Nonce, s.callbackURL())
	if err != nil {
		s.log.Info("admin: sign-in failed", "err", err)
		s.fail(w, r, http.StatusForbidden, "Sign-in failed: "+core.ReasonOf(err))
		return
	}
	s.signIn(w, r, who)
	seeOther(w, r, safeNext(st.Next))
}

func (s *Server) readOIDCState(r *http.Request) (oidcState, bool) {
	var st oidcState
	c, err := r.Cookie(oidcCookie)
	if err != nil {
		return st, false
	}
	v, sig, ok := strings.Cut(c.Value, ".")
	if !ok || !macEqual(sig, s.mac("oidc", v)) {
		return st, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || json.Unmarshal(raw, &st) != nil {
		return st, false
	}
	return st, s.router.Now().Unix() < st.Expires
}

// hashOf lets two strings of any length be compared in constant time.
func hashOf(v string) string {
	h := sha256.Sum256([]byte(v))
	return string(h[:])
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	sess := s.checkCSRF(w, r)
	if sess == nil {
		return
	}
	if err := s.signOut(w, r, sess); err != nil {
		// Fail closed: the session is still valid on other servers, so
		// the user must not be told it ended (docs/decisions.md, Web).
		s.log.Error("admin: sign-out refused", "err", err)
		w.Header().Set("Retry-After", "5")
		s.render(w, r, http.StatusServiceUnavailable, "error", page{Title: http.StatusText(http.StatusServiceUnavailable), User: sess,
			Data: "You are still signed in: your sign-out could not be recorded on every server of the service. Try again in a moment."})
		return
	}
	s.setFlash(w, "ok", "You are signed out.")
	seeOther(w, r, "/")
}

// safeNext keeps only local paths, so that sign-in is never an open
// redirect: "//evil", "/\evil", "https://evil" and anything odd become "/".
func safeNext(next string) string {
	if next == "" || next[0] != '/' || len(next) > 2048 {
		return "/"
	}
	if len(next) > 1 && (next[1] == '/' || next[1] == '\\') {
		return "/"
	}
	for i := 0; i < len(next); i++ {
		if c := next[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "/"
	}
	return next
}
