package admin

import (
	"context"
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
// read back at start. Servers that share a session key (a cluster) share
// their sign-outs through Config.SignOuts as well: a sign-out is recorded
// there before it is answered, and a session that this server has not
// seen signed out is looked up there at each request; when it cannot be
// looked up, the session is refused (errSignOutsUnknown).

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

// SignOuts shares sign-outs between the servers that share a session key
// (Config.SignOuts). A cluster's implementation keeps them where every
// node reads them; it must be safe for concurrent use.
type SignOuts interface {
	// Add records that session id is signed out until expires. Once it
	// returns nil, Has answers true on every server that shares it.
	Add(ctx context.Context, id string, expires time.Time) error
	// Has says whether session id was signed out. An error means it
	// cannot tell now: the session is refused until it can.
	Has(ctx context.Context, id string) (bool, error)
}

// errSignOutsUnknown is a session that may have been signed out on
// another server: Config.SignOuts could not be asked.
var errSignOutsUnknown = errors.New("admin: cannot tell whether the session was signed out")

type sessionStore struct {
	ttl    time.Duration
	now    func() time.Time
	key    []byte
	file   string   // the signed-out list's file; "" keeps it in memory only
	shared SignOuts // nil on one server

	mu        sync.Mutex       // guards: signedOut
	signedOut map[string]int64 // session id → its expiry, Unix seconds
}

func newSessionStore(ttl time.Duration, now func() time.Time, key []byte, file string, shared SignOuts) (*sessionStore, error) {
	st := &sessionStore{ttl: ttl, now: now, key: key, file: file, shared: shared, signedOut: make(map[string]int64)}
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
// signature is wrong, it has expired or it was signed out; with an error
// (errSignOutsUnknown) when the shared sign-outs cannot be asked.
func (st *sessionStore) get(ctx context.Context, value string) (*session, error) {
	body, mac, ok := strings.Cut(value, ".")
	if !ok || len(value) > 4096 || !hmac.Equal([]byte(mac), []byte(st.sign(body))) {
		return nil, nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return nil, nil
	}
	var c sessionClaims
	if json.Unmarshal(payload, &c) != nil || c.ID == "" {
		return nil, nil
	}
	expires := time.Unix(c.Expires, 0)
	if !st.now().Before(expires) {
		return nil, nil
	}
	st.mu.Lock()
	_, out := st.signedOut[c.ID]
	st.mu.Unlock()
	if out {
		return nil, nil
	}
	if st.shared != nil {
		// Asked at every request: a sign-out on another server counts
		// as soon as it was answered there (PROTOCOL §10's 1 s).
		out, err := st.shared.Has(ctx, c.ID)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errSignOutsUnknown, err)
		}
		if out {
			st.mu.Lock()
			st.addLocked(c.ID, c.Expires) // not asked again
			st.mu.Unlock()
			return nil, nil
		}
	}
	return &session{id: c.ID, Who: core.Identity{Subject: c.Subject, Email: c.Email}, Owner: c.Owner,
		Created: time.Unix(c.Created, 0), Expires: expires}, nil
}

// remove signs a session out for good: its id is refused until the
// session would have expired, across restarts when there is a file. With
// shared sign-outs it is recorded there first: when that fails nothing
// is recorded, and the session goes on (a sign-out said done must be
// done on every server).
func (st *sessionStore) remove(ctx context.Context, s *session) error {
	if st.shared != nil {
		if err := st.shared.Add(ctx, s.id, s.Expires); err != nil {
			return fmt.Errorf("%w: %w", errSignOutNotShared, err)
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.addLocked(s.id, s.Expires.Unix())
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

// addLocked keeps id as signed out until expires (Unix seconds).
func (st *sessionStore) addLocked(id string, expires int64) {
	if len(st.signedOut) >= maxSignedOut {
		st.pruneLocked()
	}
	st.signedOut[id] = expires
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

// sessionOf returns the request's session, or nil (also when it cannot
// be told whether the session was signed out on another server).
func (s *Server) sessionOf(r *http.Request) *session {
	sess, _ := s.checkSession(r)
	return sess
}

// signOutsTimeout bounds a look-up or a record in Config.SignOuts.
const signOutsTimeout = 5 * time.Second

// checkSession returns the request's session, or nil; the error says
// that the shared sign-outs could not be asked (the session is refused).
func (s *Server) checkSession(r *http.Request) (*session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), signOutsTimeout)
	defer cancel()
	sess, err := s.sessions.get(ctx, c.Value)
	if err != nil {
		s.log.Warn("admin: a session refused: its sign-out cannot be checked", "err", err)
	}
	return sess, err
}

// failUnchecked answers a request whose session cannot be checked now.
func (s *Server) failUnchecked(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", "5")
	s.render(w, r, http.StatusServiceUnavailable, "error", page{Title: http.StatusText(http.StatusServiceUnavailable), signedOut: true,
		Data: "Your sign-in cannot be checked right now (this server has lost its link to the rest of the service). Try again in a moment."})
}

// signIn replaces any session of the browser with a fresh one (a new id at
// every sign-in: no session fixation).
func (s *Server) signIn(w http.ResponseWriter, r *http.Request, who core.Identity) *session {
	if old := s.sessionOf(r); old != nil {
		if err := s.endSession(r.Context(), old); err != nil {
			// The browser gets the new session; the old cookie, if it
			// was copied, lasts until it expires.
			s.log.Error("admin: the sign-out of a replaced session is not recorded", "err", err)
		}
	}
	sess, value := s.sessions.create(who)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: value, Path: "/",
		Expires: sess.Expires, MaxAge: int(s.sessions.ttl.Seconds()),
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
	return sess
}

// errSignOutNotShared is a sign-out that Config.SignOuts did not record:
// the session is still valid everywhere.
var errSignOutNotShared = errors.New("admin: the sign-out could not be recorded for every server")

// endSession signs sess out. It fails only when the shared sign-outs
// could not record it; a failure to record it on disk is logged (the
// sign-out still holds until the process restarts).
func (s *Server) endSession(ctx context.Context, sess *session) error {
	ctx, cancel := context.WithTimeout(ctx, signOutsTimeout)
	defer cancel()
	err := s.sessions.remove(ctx, sess)
	if errors.Is(err, errSignOutNotShared) {
		return err
	}
	if err != nil {
		s.log.Error("admin: recording a sign-out", "file", s.sessions.file, "err", err)
	}
	return nil
}

// signOut ends the request's session and clears its cookie. When the
// sign-out cannot be recorded for every server, it changes nothing (the
// browser keeps its cookie, to try again) and returns the error.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request, sess *session) error {
	if err := s.endSession(r.Context(), sess); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
	return nil
}

// requireUser returns the session, or sends the browser to sign in and
// back to this page (GET only; a POST without a session fails the CSRF
// check first); a session that cannot be checked gets a 503 page.
func (s *Server) requireUser(w http.ResponseWriter, r *http.Request) *session {
	sess, err := s.checkSession(r)
	if sess != nil {
		return sess
	}
	if err != nil {
		s.failUnchecked(w, r)
		return nil
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
