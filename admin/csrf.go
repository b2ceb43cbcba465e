package admin

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
)

// CSRF: every form carries a hidden csrf_token, checked on every POST.
//   - Signed in: the token is HMAC(key, "csrf\x00"+session id). It is tied
//     to the session, needs no storage, and changes at every sign-in.
//   - Before sign-in (the login form): a signed double-submit. GET /login
//     sets a random cookie; the form carries HMAC(key, "login\x00"+cookie).
//     A cross-site page can neither read the cookie nor compute the MAC.
// SameSite=Lax cookies are a second wall, not the only one.

const (
	csrfField   = "csrf_token"
	loginCookie = "presence_login_csrf"
)

func (s *Server) mac(parts ...string) string {
	m := hmac.New(sha256.New, s.key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) csrfToken(sess *session) string { return s.mac("csrf", sess.id) }

func macEqual(a, b string) bool { return hmac.Equal([]byte(a), []byte(b)) }

// checkCSRF returns the session of a POST whose csrf_token is right, or
// answers 403 and returns nil.
func (s *Server) checkCSRF(w http.ResponseWriter, r *http.Request) *session {
	sess, err := s.checkSession(r)
	if err != nil {
		s.failUnchecked(w, r)
		return nil
	}
	if sess == nil {
		s.fail(w, r, http.StatusForbidden, "You are not signed in (or your session has ended). Sign in and try again.")
		return nil
	}
	if tok := r.PostFormValue(csrfField); tok == "" || !macEqual(tok, s.csrfToken(sess)) {
		s.fail(w, r, http.StatusForbidden, "This form has expired or did not come from this site. Go back, reload the page and try again.")
		return nil
	}
	return sess
}

// loginCSRF returns the token for the sign-in form, setting its cookie
// when the browser has none.
func (s *Server) loginCSRF(w http.ResponseWriter, r *http.Request) string {
	v := ""
	if c, err := r.Cookie(loginCookie); err == nil && len(c.Value) >= 32 {
		v = c.Value
	} else {
		v = randomToken()
		http.SetCookie(w, &http.Cookie{
			Name: loginCookie, Value: v, Path: "/login", MaxAge: 3600,
			HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
		})
	}
	return s.mac("login", v)
}

func (s *Server) checkLoginCSRF(r *http.Request) bool {
	c, err := r.Cookie(loginCookie)
	if err != nil || c.Value == "" {
		return false
	}
	tok := r.PostFormValue(csrfField)
	return tok != "" && macEqual(tok, s.mac("login", c.Value))
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
