package admin

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/presence-service/presence/core"
)

// Sessions live in memory, keyed by a random 256-bit id that is the
// cookie's value. Server side rather than a signed cookie so that sign-out
// really ends a session (a copied cookie dies with it). The cost: sessions
// end when the process restarts, and each node has its own; people sign
// in again.

const sessionCookie = "presence_session"

// maxSessions bounds memory: in dev mode anyone can sign in as anyone, so
// the map must not grow without limit. Past it, the oldest sessions go.
const maxSessions = 100_000

// session is one signed-in browser. Fields are set at sign-in and never
// change, so a *session may be read without a lock.
type session struct {
	id      string
	Who     core.Identity
	Owner   string // lower-cased email: owner of apps, checked against admin.emails
	Created time.Time
	Expires time.Time
}

// Email is what the pages show.
func (s *session) Email() string { return s.Owner }

type sessionStore struct {
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex // guards: m
	m  map[string]*session
}

func newSessionStore(ttl time.Duration, now func() time.Time) *sessionStore {
	return &sessionStore{ttl: ttl, now: now, m: make(map[string]*session)}
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("admin: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for who.
func (st *sessionStore) create(who core.Identity) *session {
	now := st.now()
	owner := strings.ToLower(strings.TrimSpace(who.Email))
	if owner == "" {
		owner = who.Subject
	}
	s := &session{id: randomToken(), Who: who, Owner: owner, Created: now, Expires: now.Add(st.ttl)}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.m) >= maxSessions {
		st.pruneLocked(now)
	}
	st.m[s.id] = s
	return s
}

// pruneLocked drops expired sessions, then the oldest tenth if still full.
func (st *sessionStore) pruneLocked(now time.Time) {
	for id, s := range st.m {
		if !now.Before(s.Expires) {
			delete(st.m, id)
		}
	}
	if len(st.m) < maxSessions {
		return
	}
	cut := now
	for _, s := range st.m {
		if s.Created.Before(cut) {
			cut = s.Created
		}
	}
	cut = cut.Add(now.Sub(cut) / 10)
	for id, s := range st.m {
		if !s.Created.After(cut) {
			delete(st.m, id)
		}
	}
}

func (st *sessionStore) get(id string) *session {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.m[id]
	if s == nil {
		return nil
	}
	if !st.now().Before(s.Expires) {
		delete(st.m, id)
		return nil
	}
	return s
}

func (st *sessionStore) remove(id string) {
	st.mu.Lock()
	delete(st.m, id)
	st.mu.Unlock()
}

// sessionOf returns the request's session, or nil.
func (s *Server) sessionOf(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	return s.sessions.get(c.Value)
}

// signIn replaces any session of the browser with a fresh one (a new id at
// every sign-in: no session fixation).
func (s *Server) signIn(w http.ResponseWriter, r *http.Request, who core.Identity) *session {
	if old := s.sessionOf(r); old != nil {
		s.sessions.remove(old.id)
	}
	sess := s.sessions.create(who)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: sess.id, Path: "/",
		Expires: sess.Expires, MaxAge: int(s.sessions.ttl.Seconds()),
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
	return sess
}

func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	if old := s.sessionOf(r); old != nil {
		s.sessions.remove(old.id)
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
}

// requireUser returns the session, or sends the browser to sign in and
// back to this page (GET only; a POST without a session fails the CSRF
// check first).
func (s *Server) requireUser(w http.ResponseWriter, r *http.Request) *session {
	if sess := s.sessionOf(r); sess != nil {
		return sess
	}
	seeOther(w, r, "/login?next="+urlQueryEscape(r.URL.RequestURI()))
	return nil
}

// isAdmin says whether the signed-in email is listed in admin.emails.
func (s *Server) isAdmin(sess *session) bool {
	if sess == nil {
		return false
	}
	for _, e := range s.cfg.Admin.Emails {
		if strings.EqualFold(strings.TrimSpace(e), sess.Owner) {
			return true
		}
	}
	return false
}
