package admin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/presence-service/presence/core"
)

// Sessions are signed cookies: the cookie holds the session (an id, who
// signed in, when it ends) and an HMAC under the session key, which the
// server keeps in its data folder (Config.SessionKey). Nothing else needs
// to survive a restart, so a restart or another node does not sign
// anyone out. Sign-out must still really end a session, a copied cookie
// with it: signed-out ids are kept until their session would have
// expired, in memory and, when Config.SignedOutFile is set, in that file,
// read back at start.

const sessionCookie = "presence_session"

// maxSignedOut bounds the signed-out ids kept (in dev mode anyone can
// sign in and out as anyone); past it the ones nearest their expiry go.
const maxSignedOut = 100_000

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

// sessionClaims is a session as the cookie carries it.
type sessionClaims struct {
	ID      string `json:"i"`
	Subject string `json:"s"`
	Email   string `json:"e"`
	Owner   string `json:"o"`
	Created int64  `json:"c"`
	Expires int64  `json:"x"`
}

type sessionStore struct {
	ttl  time.Duration
	now  func() time.Time
	key  []byte
	file string // the signed-out list's file; "" keeps it in memory only

	mu        sync.Mutex       // guards: signedOut
	signedOut map[string]int64 // session id → its expiry, Unix seconds
}

func newSessionStore(ttl time.Duration, now func() time.Time, key []byte, file string) (*sessionStore, error) {
	st := &sessionStore{ttl: ttl, now: now, key: key, file: file, signedOut: make(map[string]int64)}
	if file == "" {
		return st, nil
	}
	if err := st.loadSignedOut(); err != nil {
		return nil, fmt.Errorf("admin: signed-out sessions %s: %w", file, err)
	}
	return st, nil
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("admin: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for who and returns it with its cookie value.
func (st *sessionStore) create(who core.Identity) (*session, string) {
	now := st.now()
	owner := strings.ToLower(strings.TrimSpace(who.Email))
	if owner == "" {
		owner = who.Subject
	}
	s := &session{id: randomToken(), Who: who, Owner: owner, Created: now, Expires: now.Add(st.ttl)}
	payload, _ := json.Marshal(sessionClaims{ID: s.id, Subject: who.Subject, Email: who.Email, Owner: owner,
		Created: now.Unix(), Expires: s.Expires.Unix()})
	body := base64.RawURLEncoding.EncodeToString(payload)
	return s, body + "." + st.sign(body)
}

func (st *sessionStore) sign(body string) string {
	m := hmac.New(sha256.New, st.key)
	m.Write([]byte("session\x00"))
	m.Write([]byte(body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// get returns the session a cookie value carries, or nil when its
// signature is wrong, it has expired or it was signed out.
func (st *sessionStore) get(value string) *session {
	body, mac, ok := strings.Cut(value, ".")
	if !ok || len(value) > 4096 || !hmac.Equal([]byte(mac), []byte(st.sign(body))) {
		return nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return nil
	}
	var c sessionClaims
	if json.Unmarshal(payload, &c) != nil || c.ID == "" {
		return nil
	}
	expires := time.Unix(c.Expires, 0)
	if !st.now().Before(expires) {
		return nil
	}
	st.mu.Lock()
	_, out := st.signedOut[c.ID]
	st.mu.Unlock()
	if out {
		return nil
	}
	return &session{id: c.ID, Who: core.Identity{Subject: c.Subject, Email: c.Email}, Owner: c.Owner,
		Created: time.Unix(c.Created, 0), Expires: expires}
}

// remove signs a session out for good: its id is refused until the
// session would have expired, across restarts when there is a file.
func (st *sessionStore) remove(s *session) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.signedOut) >= maxSignedOut {
		st.pruneLocked()
	}
	st.signedOut[s.id] = s.Expires.Unix()
	if st.file == "" {
		return nil
	}
	f, err := os.OpenFile(st.file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err == nil {
		_, err = fmt.Fprintf(f, "%s %d\n", s.id, s.Expires.Unix())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// pruneLocked drops the ids whose sessions have expired, then, if still
// full, the tenth nearest their expiry.
func (st *sessionStore) pruneLocked() {
	now := st.now().Unix()
	for id, exp := range st.signedOut {
		if exp <= now {
			delete(st.signedOut, id)
		}
	}
	if len(st.signedOut) < maxSignedOut {
		return
	}
	cut := now + int64(st.ttl.Seconds())/10
	for id, exp := range st.signedOut {
		if exp <= cut {
			delete(st.signedOut, id)
		}
	}
}

// loadSignedOut reads the file's unexpired ids and writes it back with
// only those, so that it does not grow across restarts.
func (st *sessionStore) loadSignedOut() error {
	data, err := os.ReadFile(st.file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	now := st.now().Unix()
	var kept strings.Builder
	for line := range strings.Lines(string(data)) {
		id, exp, ok := strings.Cut(strings.TrimSpace(line), " ")
		n, err := strconv.ParseInt(exp, 10, 64)
		if !ok || err != nil || n <= now {
			continue
		}
		st.signedOut[id] = n
		fmt.Fprintf(&kept, "%s %d\n", id, n)
	}
	tmp := st.file + ".tmp"
	if err := os.WriteFile(tmp, []byte(kept.String()), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, st.file)
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
		s.endSession(old)
	}
	sess, value := s.sessions.create(who)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: value, Path: "/",
		Expires: sess.Expires, MaxAge: int(s.sessions.ttl.Seconds()),
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
	return sess
}

// endSession signs sess out; a failure to record it on disk is logged
// (the sign-out still holds until the process restarts).
func (s *Server) endSession(sess *session) {
	if err := s.sessions.remove(sess); err != nil {
		s.log.Error("admin: recording a sign-out", "file", s.sessions.file, "err", err)
	}
}

func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	if old := s.sessionOf(r); old != nil {
		s.endSession(old)
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
